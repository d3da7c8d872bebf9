// Package datasets reads KDD Cup 99 and NSL-KDD, encodes their records as
// feature vectors, groups them into class pools and draws few-shot episodes.
package datasets

// NumFeatures is the number of features of a KDD Cup 99 / NSL-KDD record.
const NumFeatures = 41

// NumNumeric is the number of numeric features (the 41 less the three
// categorical ones).
const NumNumeric = NumFeatures - 3

// FeatureNames are the 41 features in file order (UCI's kddcup.names).
var FeatureNames = [NumFeatures]string{
	"duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes",
	"land", "wrong_fragment", "urgent", "hot", "num_failed_logins",
	"logged_in", "num_compromised", "root_shell", "su_attempted", "num_root",
	"num_file_creations", "num_shells", "num_access_files",
	"num_outbound_cmds", "is_host_login", "is_guest_login", "count",
	"srv_count", "serror_rate", "srv_serror_rate", "rerror_rate",
	"srv_rerror_rate", "same_srv_rate", "diff_srv_rate",
	"srv_diff_host_rate", "dst_host_count", "dst_host_srv_count",
	"dst_host_same_srv_rate", "dst_host_diff_srv_rate",
	"dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate",
	"dst_host_serror_rate", "dst_host_srv_serror_rate",
	"dst_host_rerror_rate", "dst_host_srv_rerror_rate",
}

// CategoricalFields are the file positions of the categorical features
// (protocol_type, service, flag).
var CategoricalFields = [3]int{1, 2, 3}

// NumericFields are the file positions of the 38 numeric features, in order.
var NumericFields = func() [NumNumeric]int {
	var f [NumNumeric]int
	n := 0
	for i := 0; i < NumFeatures; i++ {
		if i != 1 && i != 2 && i != 3 {
			f[n] = i
			n++
		}
	}
	return f
}()

// Format is the layout of a record file.
type Format int

const (
	// FormatNSL: 41 features, the label, then the difficulty level (43 fields).
	FormatNSL Format = iota
	// FormatKDD99: 41 features, then the label with a trailing period (42 fields).
	FormatKDD99
)

// Fields is the number of comma-separated fields of a line in this format.
func (f Format) Fields() int {
	if f == FormatNSL {
		return NumFeatures + 2
	}
	return NumFeatures + 1
}

func (f Format) String() string {
	if f == FormatNSL {
		return "nsl-kdd"
	}
	return "kddcup99"
}
