package reward

import (
	"image"
	"math/bits"
	"strings"

	"github.com/thinkgen/thinkgen/datasets"
)

// ReadText is the template-matching OCR of ShapeWorld text. It binarises
// the image (text ink against everything else), then for every string
// length n from 0 to datasets.MaxTextLen and every placement within one
// font pixel of the centred layout, matches each glyph cell against every
// glyph of the alphabet; the reading that leaves the fewest mismatched
// pixels (glyph mismatches plus ink outside the cells) wins. A cell whose
// best glyph has more than half of its ink pixels missing is not that
// glyph but a character no longer written (cut off, erased): it reads as
// '?'. It returns "" for an image without text.
func ReadText(img image.Image) (string, error) {
	m, err := toRGBA(img, "image")
	if err != nil {
		return "", err
	}
	return readText(m, classify(m)), nil
}

func readText(img *image.RGBA, classes []int) string {
	size := img.Bounds().Dx()
	k := datasets.TextScale(size)
	ink := make([]bool, len(classes))
	total := 0
	for i, c := range classes {
		if c == classInk {
			ink[i] = true
			total++
		}
	}
	if total == 0 {
		return ""
	}
	glyphs := datasets.Glyphs()
	alphabet := []rune(datasets.TextAlphabet)
	cw, ch := datasets.GlyphWidth*k, datasets.GlyphHeight*k
	words := (cw*ch + 63) / 64
	// Glyph bitmaps scaled by k, as bit sets in the cell's row-major order.
	gbits := make([][]uint64, len(alphabet))
	for gi, r := range alphabet {
		g := glyphs[r]
		gb := make([]uint64, words)
		for y := range ch {
			for x := range cw {
				if g[(y/k)*datasets.GlyphWidth+x/k] {
					j := y*cw + x
					gb[j/64] |= 1 << (j % 64)
				}
			}
		}
		gbits[gi] = gb
	}
	gInk := make([]int, len(gbits))
	for gi, g := range gbits {
		for _, w := range g {
			gInk[gi] += bits.OnesCount64(w)
		}
	}
	cell := make([]uint64, words)
	best, bestCost := "", total // n = 0: every ink pixel is a mismatch
	for n := 1; n <= datasets.MaxTextLen; n++ {
		ox, oy := datasets.TextOrigin(n, size)
		for dy := -k; dy <= k; dy += k {
			for dx := -k; dx <= k; dx += k {
				cost, inside := 0, 0
				var text strings.Builder
				for i := range n {
					x0, y0 := ox+dx+i*datasets.GlyphAdvance*k, oy+dy
					clear(cell)
					for y := range ch {
						py := y0 + y
						if py < 0 || py >= size {
							continue
						}
						for x := range cw {
							px := x0 + x
							if px >= 0 && px < size && ink[py*size+px] {
								j := y*cw + x
								cell[j/64] |= 1 << (j % 64)
							}
						}
					}
					for _, w := range cell {
						inside += bits.OnesCount64(w)
					}
					gBest, gCost := 0, -1
					for gi, g := range gbits {
						c := 0
						for j, w := range cell {
							c += bits.OnesCount64(w ^ g[j])
						}
						if gCost < 0 || c < gCost {
							gBest, gCost = gi, c
						}
					}
					missing := 0
					for j, w := range cell {
						missing += bits.OnesCount64(gbits[gBest][j] &^ w)
					}
					if 2*missing > gInk[gBest] {
						text.WriteRune('?')
					} else {
						text.WriteRune(alphabet[gBest])
					}
					cost += gCost
				}
				cost += total - inside
				if cost < bestCost {
					best, bestCost = text.String(), cost
				}
			}
		}
	}
	return best
}

// normalizeOCR removes spaces (only U+0020, as flow_grpo's
// str.replace(" ", "")) and lower-cases.
func normalizeOCR(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, " ", ""))
}

// OCRReward is flow_grpo's OCR reward (flow_grpo/ocr.py): with spaces
// removed and letters lower-cased, d = 0 if the target is a substring of
// the recognised text, else min(Levenshtein(recognised, target),
// len(target)); the reward is 1 − d/len(target), lengths in characters.
// flow_grpo divides by zero on an empty target; here an empty target earns
// 1 when nothing was recognised and 0 otherwise.
func OCRReward(recognised, target string) float64 {
	p, t := []rune(normalizeOCR(recognised)), []rune(normalizeOCR(target))
	if len(t) == 0 {
		if len(p) == 0 {
			return 1
		}
		return 0
	}
	if strings.Contains(string(p), string(t)) {
		return 1
	}
	d := min(levenshtein(p, t), len(t))
	return 1 - float64(d)/float64(len(t))
}

// WordAccuracy is CVTG's word accuracy: the fraction of the target's
// space-separated words that the recognised text contains as words (exact,
// case-sensitive). An empty target scores 1.
func WordAccuracy(recognised, target string) float64 {
	want := strings.Fields(target)
	if len(want) == 0 {
		return 1
	}
	have := map[string]int{}
	for _, w := range strings.Fields(recognised) {
		have[w]++
	}
	hit := 0
	for _, w := range want {
		if have[w] > 0 {
			have[w]--
			hit++
		}
	}
	return float64(hit) / float64(len(want))
}

// levenshtein is the edit distance between a and b (unit costs).
func levenshtein[T comparable](a, b []T) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// NED is the normalised edit distance between two strings, by characters:
// Levenshtein(a, b)/max(len a, len b), 0 for two empty strings.
func NED(a, b string) float64 {
	ra, rb := []rune(a), []rune(b)
	n := max(len(ra), len(rb))
	if n == 0 {
		return 0
	}
	return float64(levenshtein(ra, rb)) / float64(n)
}
