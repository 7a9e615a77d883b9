// Package deploy holds what users need to run Dialstream next to a real Kafka
// and LiveKit: compose/ (a complete local stack), k8s/ (a Kustomize base and
// an example overlay) and docker/ (the release image). It has no code of its
// own; its tests check those files offline against the code: every manifest
// strictly decoded into its real API type, and every service's environment
// run through the service's own LoadConfig.
package deploy
