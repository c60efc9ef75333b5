package learner

import "github.com/thinkgen/thinkgen/optim"

// SetLossScale makes l train with loss scale s, as a float16 policy does
// (tests drive the path with float32 models: the CPU has no float16
// matmul).
func SetLossScale(l *Learner, s *optim.LossScale) { l.lossScale = s }
