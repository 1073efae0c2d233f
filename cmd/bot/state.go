package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"rebootbot/approval"
	"rebootbot/etcdstore"
	"rebootbot/metrics"
	"rebootbot/store"
)

// etcdOpenWait bounds how long serve waits for the etcd cluster at
// start-up.
const etcdOpenWait = 10 * time.Second

// Health checks of an etcd store: a read with quorum each time the last
// answer is older than etcdHealthEvery, given etcdHealthTimeout.
const (
	etcdHealthEvery   = time.Second
	etcdHealthTimeout = time.Second
)

// stateStore is where a bot keeps its requests and audit log: the bbolt
// file, or an etcd cluster shared with other replicas.
type stateStore struct {
	db     *store.DB        // the bbolt file, or nil
	etcd   *etcdstore.Store // the cluster, or nil
	health func(context.Context) error
}

// openState opens the store cfg names; counts gets the bbolt store's
// commits.
func openState(ctx context.Context, cfg *config, log *slog.Logger, counts *metrics.Metrics) (*stateStore, error) {
	if cfg.OnEtcd {
		ctx, cancel := context.WithTimeout(ctx, etcdOpenWait)
		defer cancel()
		s, err := etcdstore.Open(ctx, cfg.Etcd, etcdstore.Options{})
		if err != nil {
			return nil, fmt.Errorf("BOT_ETCD_ENDPOINTS: %w", err)
		}
		return &stateStore{etcd: s, health: newHealthCheck(s.Check, etcdHealthEvery, etcdHealthTimeout).Check}, nil
	}
	db, err := store.Open(cfg.DBPath, store.Options{
		Timeout: time.Second, Check: true, ProbeEvery: writeProbeEvery,
		OnWritable: func(err error) {
			if err != nil {
				log.Error("BOT_DB cannot be written: commands and clicks are refused and /healthz fails until it can", "db", cfg.DBPath, "err", err)
				return
			}
			log.Info("BOT_DB can be written again", "db", cfg.DBPath)
		},
		OnCommit: func(c store.Commit) { counts.StoreCommit(c.Urgent, c.Writes, c.Took) },
	})
	if err != nil {
		var damaged *store.DamagedError
		switch {
		case errors.Is(err, store.ErrLocked):
			return nil, fmt.Errorf("BOT_DB %s is in use by another process (is another bot running?)", cfg.DBPath)
		case errors.As(err, &damaged):
			return nil, err
		}
		return nil, fmt.Errorf("BOT_DB %s: %w", cfg.DBPath, err)
	}
	return &stateStore{db: db, health: db.Check}, nil
}

// answering returns the store the engine that answers Slack uses.
func (s *stateStore) answering() approval.Store {
	if s.etcd != nil {
		return boundedStore{s.etcd, storeCallTimeout, storeCreateTimeout}
	}
	return s.db
}

// Close closes the file or the connection to the cluster.
func (s *stateStore) Close() error {
	if s.etcd != nil {
		return s.etcd.Close()
	}
	return s.db.Close()
}
