// Package reward scores rollouts: deterministic rule models for the five
// ShapeWorld scenarios (composition, reasoning, text rendering, editing,
// reflection), a registry that routes each row by its scenario column, and
// the client and server of remote reward services.
package reward
