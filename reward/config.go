package reward

import (
	"fmt"
	"slices"
	"strings"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
)

// FromConfig builds the registry a run's configuration describes: the
// built-in rule model of every scenario, except those reward.remote maps
// to a service URL, which are scored through a Client (one per URL, with
// reward.timeout per request and the bearer token LoadToken finds in the
// environment, if any); reward.weights weigh the results.
func FromConfig(c config.Reward) (*Registry, error) {
	scorers := Rules()
	var token string
	if len(c.Remote) > 0 {
		var err error
		if token, err = LoadToken(""); err != nil {
			return nil, fmt.Errorf("reward.remote: %w", err)
		}
	}
	clients := map[string]*Client{}
	for sc, url := range c.Remote {
		if !slices.Contains(datasets.AllScenarios, sc) {
			return nil, fmt.Errorf("reward.remote: %w %q (want one of %s)", ErrUnknownScenario, sc, strings.Join(datasets.AllScenarios, ", "))
		}
		cl, ok := clients[url]
		if !ok {
			var err error
			if cl, err = NewClient(url, ClientOptions{Timeout: c.Timeout, Token: token}); err != nil {
				return nil, fmt.Errorf("reward.remote.%s: %w", sc, err)
			}
			clients[url] = cl
		}
		scorers[sc] = cl
	}
	for sc := range c.Weights {
		if !slices.Contains(datasets.AllScenarios, sc) {
			return nil, fmt.Errorf("reward.weights: %w %q (want one of %s)", ErrUnknownScenario, sc, strings.Join(datasets.AllScenarios, ", "))
		}
	}
	return NewRegistry(scorers, c.Weights), nil
}
