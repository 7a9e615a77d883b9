// Package testbin runs the real dialstream binary for the integration
// packages under tests/: it finds the repository root, builds
// ./cmd/dialstream once per test process, hands out free loopback ports and
// starts `dialstream dev` in a fresh directory with a clean environment.
//
//   - build.go: RepoRoot, Build (for a TestMain) and Binary (for a test).
//   - dev.go: StartDev, the whole pipeline in one child process with only
//     the environment it is given, ready when it returns.
//   - process.go: StartProcess and WaitReady, for any child process a test
//     runs (dev mode, Prometheus): logged to a file, killed with the test
//     binary, stopped with SIGTERM when the test ends and required to exit
//     cleanly.
//   - ports.go: FreeAddr.
package testbin
