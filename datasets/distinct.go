package datasets

import "hash/maphash"

// rowKey is everything that makes two records the same record: the 41
// features and the label (NSL-KDD's difficulty is a note on the record,
// not part of it).
type rowKey struct {
	num   [NumNumeric]float64
	cat   [3]uint16
	label uint16
}

func (r *Records) key(i int) rowKey {
	k := rowKey{num: [NumNumeric]float64(r.Num[i*NumNumeric : (i+1)*NumNumeric]), label: r.Label[i]}
	for j := range k.cat {
		k.cat[j] = r.Cat[j][i]
	}
	return k
}

// Distinct returns the records of r that repeat no earlier record, in file
// order, with Repeats counting those it left out. KDD Cup 99 repeats most of its records
// (kddcup.data_10_percent holds 145,586 distinct among 494,021), so that an
// episode's support and query sets share rows; NSL-KDD was built without
// repeats. When there are none r itself is returned. The vocabularies are
// kept: every label and symbol still has its first record.
func (r *Records) Distinct() *Records {
	seed := maphash.MakeSeed()
	return r.distinct(func(k rowKey) uint64 { return maphash.Comparable(seed, k) })
}

// distinct is Distinct with the row hash given (tests make it collide).
// A 64-bit hash per row, with rows of equal hash compared in full, keeps
// the set small (a key is 312 bytes). Which rows are kept does not depend
// on the hash.
func (r *Records) distinct(hash func(rowKey) uint64) *Records {
	first := make(map[uint64]int32, r.N/2)
	var more map[uint64][]int32 // further distinct rows of a hash, rarely any
	keep := make([]int32, 0, r.N)
	for i := 0; i < r.N; i++ {
		k := r.key(i)
		h := hash(k)
		j, seen := first[h]
		switch {
		case !seen:
			first[h] = int32(i)
		case r.key(int(j)) == k:
			continue
		default:
			repeat := false
			for _, j := range more[h] {
				if repeat = r.key(int(j)) == k; repeat {
					break
				}
			}
			if repeat {
				continue
			}
			if more == nil {
				more = map[uint64][]int32{}
			}
			more[h] = append(more[h], int32(i))
		}
		keep = append(keep, int32(i))
	}
	if len(keep) == r.N {
		return r
	}
	out := r.rows(keep)
	out.Repeats = r.Repeats + r.N - len(keep)
	return out
}

// rows returns the records of r at the given indices, in that order.
func (r *Records) rows(idx []int32) *Records {
	out := &Records{Name: r.Name, Format: r.Format, N: len(idx), CatValues: r.CatValues, LabelNames: r.LabelNames, LabelLines: r.LabelLines,
		Num: make([]float64, 0, len(idx)*NumNumeric), Label: make([]uint16, len(idx))}
	for j := range out.Cat {
		out.Cat[j] = make([]uint16, len(idx))
	}
	if r.Difficulty != nil {
		out.Difficulty = make([]int8, len(idx))
	}
	for n, i := range idx {
		out.Num = append(out.Num, r.Num[int(i)*NumNumeric:(int(i)+1)*NumNumeric]...)
		for j := range out.Cat {
			out.Cat[j][n] = r.Cat[j][i]
		}
		out.Label[n] = r.Label[i]
		if r.Difficulty != nil {
			out.Difficulty[n] = r.Difficulty[i]
		}
	}
	return out
}
