// Package bytesize reads and prints byte counts the way people write them:
// "64MiB", "1G", "512k", "1048576".
package bytesize

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// units are the suffixes Parse accepts, all binary (K = KiB = 1024): a disk
// size written "64M" means the same as "64MiB".
var units = []struct {
	suffix string
	shift  uint
}{
	{"kib", 10}, {"mib", 20}, {"gib", 30}, {"tib", 40},
	{"kb", 10}, {"mb", 20}, {"gb", 30}, {"tb", 40},
	{"k", 10}, {"m", 20}, {"g", 30}, {"t", 40},
	{"b", 0},
}

// Parse reads a non-negative byte count: a whole or decimal number with an
// optional unit K, M, G or T (binary; KiB, MB and the like mean the same).
func Parse(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	shift := uint(0)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, shift = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.shift
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || t == "" || strings.ContainsAny(t, "eE+xXpP_") || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a size; write e.g. 64MiB, 1G or 1048576", s)
	}
	v := f * float64(uint64(1)<<shift)
	if v < 0 || v >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is out of range", s)
	}
	return int64(v), nil
}

// Format prints n with a binary unit and one decimal: "1.5 MiB", "512 B".
func Format(n int64) string {
	const unit = 1024
	if n < 0 {
		return "-" + Format(-n)
	}
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
