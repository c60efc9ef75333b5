// Package datasets generates ShapeWorld, the synthetic world that stands in
// for web-scale data: scene specifications, a renderer, prompt templates for
// every reward scenario, train and held-out splits that hold back
// combinations, and the Arrow datasets they are stored as.
package datasets
