package tfevents

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// HParamsTag is the tag of the hparams plugin's session-start value.
const HParamsTag = "_hparams_/session_start_info"

// HParam is one hyperparameter of a session: a number when Number is
// set, else the string Value.
type HParam struct {
	Name   string
	Value  string
	Number *float64
}

// HParamsSessionStart is the summary value with which TensorBoard's
// hparams plugin learns a run's hyperparameters (its HParams tab lists
// the runs of a log directory with them, beside their scalars): the
// plugin's HParamsPluginData{version: 0, session_start_info (3):
// SessionStartInfo{hparams (1): map<string, google.protobuf.Value>,
// start_time_secs (5)}} (tensorboard/plugins/hparams/plugin_data.proto).
func HParamsSessionStart(hps []HParam, startSecs float64) PluginValue {
	var info []byte
	for _, hp := range hps {
		var val []byte // google.protobuf.Value
		if hp.Number != nil {
			val = protowire.AppendTag(val, 2, protowire.Fixed64Type) // number_value
			val = protowire.AppendFixed64(val, math.Float64bits(*hp.Number))
		} else {
			val = protowire.AppendTag(val, 3, protowire.BytesType) // string_value
			val = protowire.AppendString(val, hp.Value)
		}
		var entry []byte
		entry = protowire.AppendTag(entry, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, hp.Name)
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendBytes(entry, val)
		info = protowire.AppendTag(info, 1, protowire.BytesType)
		info = protowire.AppendBytes(info, entry)
	}
	if startSecs != 0 {
		info = protowire.AppendTag(info, 5, protowire.Fixed64Type)
		info = protowire.AppendFixed64(info, math.Float64bits(startSecs))
	}
	content := protowire.AppendTag(nil, 3, protowire.BytesType)
	content = protowire.AppendBytes(content, info)
	return PluginValue{Tag: HParamsTag, Plugin: "hparams", Content: content}
}
