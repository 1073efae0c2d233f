package etcdtest

import "go.uber.org/zap"

// nopLogger keeps the client's retry chatter out of test output.
func nopLogger() *zap.Logger { return zap.NewNop() }
