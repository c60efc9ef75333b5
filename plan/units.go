package plan

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// gpuMemoryRE matches a GPU memory size: a number, optional spaces, a unit.
var gpuMemoryRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)$`)

// gpuMemoryUnits are the units ParseGPUMemory accepts, in bytes. Binary
// units (KiB … TiB, and Kubernetes' Ki … Ti) are powers of 1024; decimal
// ones (KB … TB, and K, M, G, T) are powers of 1000. nvidia-smi reports an
// "80 GB" A100 as 81920 MiB: 80GiB, not 80GB.
var gpuMemoryUnits = map[string]float64{
	"B":  1,
	"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
	"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40,
	"KI": 1 << 10, "MI": 1 << 20, "GI": 1 << 30, "TI": 1 << 40,
}

// ParseGPUMemory reads a memory size such as "80GiB", "80 GiB", "80Gi",
// "80GB" or "40G". The unit is required and case-insensitive: B; KiB, MiB,
// GiB, TiB (or Ki, Mi, Gi, Ti), powers of 1024; KB, MB, GB, TB (or K, M,
// G, T), powers of 1000. Anything else is refused with an error naming s.
func ParseGPUMemory(s string) (int64, error) {
	m := gpuMemoryRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("GPU memory %q: want a number and a unit, such as 80GiB, 80 GiB, 80Gi or 80GB", s)
	}
	unit, ok := gpuMemoryUnits[strings.ToUpper(m[2])]
	if !ok {
		return 0, fmt.Errorf("GPU memory %q: unknown unit %q (want B, KiB, MiB, GiB, TiB, Ki, Mi, Gi, Ti, KB, MB, GB, TB, K, M, G or T)", s, m[2])
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("GPU memory %q: %w", s, err)
	}
	b := math.Floor(v * unit)
	if b <= 0 || b >= math.MaxInt64 {
		return 0, fmt.Errorf("GPU memory %q: out of range", s)
	}
	return int64(b), nil
}

// DTypeBytes is the size of one element of a model.dtype.
func DTypeBytes(dtype string) (int64, error) {
	switch dtype {
	case "float32", "":
		return 4, nil
	case "bfloat16", "float16":
		return 2, nil
	}
	return 0, fmt.Errorf("model.dtype %q: want float32, bfloat16 or float16", dtype)
}

// HumanBytes renders b in GiB, MiB or KiB with one decimal.
func HumanBytes(b int64) string { return FormatBytes(b, 1) }

// FormatBytes renders b in GiB or MiB with digits decimals, or in KiB
// with one.
func FormatBytes(b int64, digits int) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.*f GiB", digits, float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.*f MiB", digits, float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
}
