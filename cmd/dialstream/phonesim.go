package main

import (
	"context"

	lksdk "github.com/livekit/server-sdk-go/v2"

	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/phonesim"
)

func init() {
	commands["phonesim"] = command{"simulate the phone network for a local livekit-server (PHONESIM_REDIS_ADDR, LIVEKIT_*)", runPhonesim, true}
}

func runPhonesim(ctx context.Context, _ []string) error {
	l := envconfig.New()
	cfg := phonesim.LoadConfig(l)
	log := loadLogger(l, "json")
	if err := l.Err(); err != nil {
		return err
	}
	reg := obs.NewRegistry()
	cfg.Logger, cfg.Registerer = log, reg
	lksdk.SetLogger(phonesim.NewSDKLogger(log))
	return phonesim.Run(ctx, cfg)
}
