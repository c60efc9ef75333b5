package model

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoTensorIsPinnedToTheCPU reads the code that builds models and
// their inputs and fails on any gotch.CPU passed as an argument: tensors
// must be made on the device run.device names (the models' device, the
// learner's, the worker's). A GPU would catch such a tensor at run time
// with a device-mismatch error; this catches it on a CPU-only machine,
// where every device is the CPU. Comparisons (dev != gotch.CPU) are fine,
// and so are the listed calls, which copy values out to Go or convert
// files rather than compute.
func TestNoTensorIsPinnedToTheCPU(t *testing.T) {
	allowed := map[string]string{
		"model/params.go:float32s":               "copies values out to Go memory",
		"model/placement.go:ParseDevice":         "the parse of run.device itself",
		"cmd/thinkgen/train.go:bundleFromExport": "converts an export's files into a bundle's",
	}
	dirs := []string{"model", "learner", "worker", "rollout", "pretrain", "evaluate", "runeval", "cmd/thinkgen"}
	found := 0
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join("..", dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, src, 0)
			if err != nil {
				t.Fatal(err)
			}
			rel := filepath.ToSlash(strings.TrimPrefix(path, ".."+string(filepath.Separator)))
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok {
					continue
				}
				ast.Inspect(fn, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok {
						return true
					}
					for _, arg := range call.Args {
						if !isGotchCPU(arg) {
							continue
						}
						found++
						if _, ok := allowed[rel+":"+fn.Name.Name]; !ok {
							t.Errorf("%s: %s passes gotch.CPU: make the tensor on the configured device (run.device) instead", fset.Position(arg.Pos()), fn.Name.Name)
						}
					}
					return true
				})
			}
		}
	}
	if found == 0 {
		t.Fatal("no gotch.CPU argument found at all: the scan reads nothing (wrong directories?)")
	}
}

func isGotchCPU(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == "gotch" && sel.Sel.Name == "CPU"
}
