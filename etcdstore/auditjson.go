package etcdstore

import (
	"context"

	"rebootbot/approval"
)

// AuditJSON calls fn with the stored canonical JSON of each event
// matching q, in Audit's order, so that `bot audit` prints records exactly
// as they were hashed.
func (s *Store) AuditJSON(ctx context.Context, q approval.AuditQuery, fn func(raw []byte) error) error {
	return s.scan(ctx, q, fn)
}
