package phonesim

import (
	"context"
	"log/slog"

	protologger "github.com/livekit/protocol/logger"
	"github.com/livekit/protocol/logger/zaputil"
)

// sdkLogger routes the LiveKit SDK's (and pion's) logs into slog. Its Info
// lines, which are connection chatter, become Debug, so only the SDK's
// warnings and errors reach a production log.
type sdkLogger struct {
	l *slog.Logger
}

var _ protologger.Logger = sdkLogger{}

// NewSDKLogger adapts l for the LiveKit SDK. The simulator passes one to
// every room it joins, but pion's WebRTC logs go through the SDK's global
// logger, which by default prints every debug line to the standard logger.
// Only a process's main should replace that global:
//
//	lksdk.SetLogger(phonesim.NewSDKLogger(logger))
func NewSDKLogger(l *slog.Logger) protologger.Logger {
	return sdkLogger{l: l.With("component", "lksdk")}
}

func (s sdkLogger) log(level slog.Level, msg string, err error, kv []any) {
	if !s.l.Enabled(context.Background(), level) {
		return
	}
	if err != nil {
		kv = append(kv, "error", err)
	}
	s.l.Log(context.Background(), level, msg, kv...)
}

func (s sdkLogger) Debugw(msg string, kv ...any) { s.log(slog.LevelDebug, msg, nil, kv) }
func (s sdkLogger) Infow(msg string, kv ...any)  { s.log(slog.LevelDebug, msg, nil, kv) }
func (s sdkLogger) Warnw(msg string, err error, kv ...any) {
	s.log(slog.LevelWarn, msg, err, kv)
}
func (s sdkLogger) Errorw(msg string, err error, kv ...any) {
	s.log(slog.LevelError, msg, err, kv)
}
func (s sdkLogger) WithValues(kv ...any) protologger.Logger { return sdkLogger{l: s.l.With(kv...)} }
func (s sdkLogger) WithUnlikelyValues(kv ...any) protologger.UnlikelyLogger {
	return protologger.NewUnlikelyLogger(s, kv...)
}
func (s sdkLogger) WithName(name string) protologger.Logger {
	return sdkLogger{l: s.l.With("logger", name)}
}
func (s sdkLogger) WithComponent(c string) protologger.Logger {
	return sdkLogger{l: s.l.With("sdk_component", c)}
}
func (s sdkLogger) WithCallDepth(int) protologger.Logger { return s }
func (s sdkLogger) WithItemSampler() protologger.Logger  { return s }
func (s sdkLogger) WithoutSampler() protologger.Logger   { return s }
func (s sdkLogger) WithDeferredValues() (protologger.Logger, protologger.DeferredFieldResolver) {
	return s, zaputil.NoOpDeferrer{}
}
