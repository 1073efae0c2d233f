package etcdstore

import (
	"context"
	"fmt"

	"rebootbot/approval"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// verifyPage is how many records one read of Verify checks (a variable so
// that tests can cross pages with small logs).
var verifyPage = 4096

// Verify checks the whole audit chain as it stood when Verify began,
// exactly as the bbolt store does (see approval.ChainVerifier): every
// record is valid JSON, carries the sequence number it is stored under,
// follows its predecessor without a gap and holds the hash of its
// predecessor's bytes, and the last one's hash is the head kept at
// meta/head. It returns the number of records checked; a
// *approval.VerifyError names the first bad one.
func (s *Store) Verify(ctx context.Context) (uint64, error) {
	got, _, err := s.read(ctx, []clientv3.Op{clientv3.OpGet(s.headKey())})
	if err != nil {
		return 0, err
	}
	h, _, err := readHead(got[0])
	if err != nil {
		return 0, err
	}
	var v approval.ChainVerifier
	end := clientv3.GetPrefixRangeEnd(s.eventPrefix())
	for {
		resp, err := s.client.Get(ctx, s.eventKey(v.Last()+1), clientv3.WithRange(end), clientv3.WithLimit(int64(verifyPage)))
		if err != nil {
			return v.Last(), unavailable(ctx, "verify", err)
		}
		for _, kv := range resp.Kvs {
			seq, ok := parseSeq(string(kv.Key), s.eventPrefix())
			if !ok {
				err := v.Bad(v.Last()+1, fmt.Sprintf("a record is stored under key %q, which is not a sequence number", kv.Key))
				return approval.VerifiedBefore(err), err
			}
			if seq > h.Seq {
				return s.verifyEnd(&v, h)
			}
			if err := v.Add(seq, kv.Value); err != nil {
				return approval.VerifiedBefore(err), err
			}
		}
		if !resp.More {
			return s.verifyEnd(&v, h)
		}
	}
}

func (s *Store) verifyEnd(v *approval.ChainVerifier, h head) (uint64, error) {
	if err := v.End(h.Seq, h.Hash); err != nil {
		return approval.VerifiedBefore(err), err
	}
	return v.Last(), nil
}
