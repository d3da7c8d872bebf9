package train

// Cost is the size and arithmetic of a learner's model, so that lightweight
// models can be compared.
type Cost struct {
	// Params are the trained parameters (Meta-SGD's learned inner learning
	// rates, fine-tuning's pre-training head and auxiliary heads included).
	Params int `json:"params"`
	// MACsPerFlow are the multiply-adds that classify one flow once the
	// model is adapted to an episode: the forward pass plus, for the
	// prototype learners, the distances to each way. Adaptation itself is
	// per episode and not counted.
	MACsPerFlow int `json:"macs_per_flow"`
}

// ModelCost computes the cost of cfg's learner for episodes of shape s.
// Auxiliary heads add parameters but no multiply-adds: classifying a flow
// does not run them.
func ModelCost(cfg Config, s Shape) Cost {
	c := modelCost(cfg, s)
	if cfg.Aux.Enabled() && cfg.Algo != "nearest-centroid" {
		enc := newMLP(s.Dim, cfg.Hidden, 0, actReLU)
		c.Params += auxParamCount(cfg.Aux, enc.outDim())
	}
	return c
}

func modelCost(cfg Config, s Shape) Cost {
	act, err := parseActivation(cfg.Activation)
	if err != nil {
		act = actReLU // the layout, not the nonlinearity, decides the cost
	}
	switch cfg.Algo {
	case "nearest-centroid":
		return Cost{MACsPerFlow: s.Ways * s.Dim}
	case "protonet":
		enc := newMLP(s.Dim, cfg.Hidden, 0, act)
		return Cost{Params: enc.nParam, MACsPerFlow: macs(enc) + s.Ways*enc.outDim()}
	case "finetune":
		enc := newMLP(s.Dim, cfg.Hidden, 0, act)
		pre := newMLP(s.Dim, cfg.Hidden, cfg.PretrainClasses, act)
		return Cost{Params: pre.nParam, MACsPerFlow: macs(enc) + s.Ways*enc.outDim()}
	case "metasgd":
		m := newMLP(s.Dim, cfg.Hidden, s.Ways, act)
		return Cost{Params: 2 * m.nParam, MACsPerFlow: macs(m)}
	default: // maml, fomaml, reptile, anil: an MLP with a Ways-way head
		m := newMLP(s.Dim, cfg.Hidden, s.Ways, act)
		return Cost{Params: m.nParam, MACsPerFlow: macs(m)}
	}
}

// Cost is the classifier's model cost: its parameters and the multiply-adds
// of one forward pass.
func (c *Classifier) Cost() Cost {
	m := newMLP(c.dim, c.cfg.Hidden, c.classes, actReLU)
	return Cost{Params: m.nParam, MACsPerFlow: macs(m)}
}

// macs are the multiply-adds of one row's forward pass.
func macs(m *mlp) int {
	n := 0
	for _, l := range m.layers {
		n += l.in * l.out
	}
	return n
}
