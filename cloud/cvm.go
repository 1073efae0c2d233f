// Package cloud is rebootbot's Tencent Cloud adapter: approval.Cloud over
// the official CVM SDK, with batching, a shared rate limiter, retries that
// sign every attempt afresh, isolation of the instances that make a batch
// fail, and a catalogue of error codes in plain words.
package cloud

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/approval"
)

// MaxIDsPerCall is the most instance IDs one RebootInstances or
// DescribeInstances call takes.
const MaxIDsPerCall = 100

// Actions the adapter calls, as OnCall reports them.
const (
	ActionDescribe = "DescribeInstances"
	ActionReboot   = "RebootInstances"
)

// CVM is the Tencent Cloud CVM adapter. It keeps one SDK client per region,
// created on first use. It is safe for concurrent use.
type CVM struct {
	cfg    Config
	scheme string // "HTTP" or "HTTPS"; "" for the SDK's default
	host   string // host[:port]; "" for the SDK's default
	log    *slog.Logger
	// jitter picks the actual backoff below a ceiling; tests replace it to
	// make delays exact.
	jitter func(ceiling time.Duration) time.Duration

	mu      sync.Mutex
	cred    common.CredentialIface
	clients map[string]*cvm.Client
}

var _ approval.Cloud = (*CVM)(nil)

// New returns an adapter for cfg. Credentials from the SDK's default chain
// are looked up on first use, not here, because the chain may ask the CVM
// metadata service over the network.
func New(cfg Config) (*CVM, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("cloud: %w", err)
	}
	scheme, host, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("cloud: endpoint: %w", err)
	}
	c := &CVM{
		cfg:     cfg,
		scheme:  scheme,
		host:    host,
		log:     cfg.Logger.With("component", "cloud"),
		jitter:  fullJitter,
		clients: make(map[string]*cvm.Client),
	}
	if cfg.SecretID != "" {
		if cfg.SessionToken != "" {
			c.cred = common.NewTokenCredential(cfg.SecretID, cfg.SecretKey, cfg.SessionToken)
		} else {
			c.cred = common.NewCredential(cfg.SecretID, cfg.SecretKey)
		}
	}
	return c, nil
}

// DefaultRegion returns the region used when a call names none.
func (c *CVM) DefaultRegion() string { return c.cfg.DefaultRegion }

// client returns the SDK client for region, creating it on first use.
func (c *CVM) client(ctx context.Context, region string) (*cvm.Client, *approval.CloudError) {
	if !validRegion(region) {
		return nil, c.clientError(CodeInvalidRequest, fmt.Sprintf("%q is not a region name such as ap-guangzhou", printable(region)))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[region]; ok {
		return cl, nil
	}
	if c.cred == nil {
		cred, ce := c.chainCredential(ctx)
		if ce != nil {
			return nil, ce
		}
		c.cred = cred
	}
	p := profile.NewClientProfile()
	p.Language = "en-US"
	// Retries belong to the adapter: the SDK's would resend the very same
	// signed request, timestamp and all.
	p.RateLimitExceededMaxRetries = 0
	p.NetworkFailureMaxRetries = 0
	p.DisableRegionBreaker = true
	if c.scheme != "" {
		p.HttpProfile.Scheme = c.scheme
	}
	p.HttpProfile.Endpoint = c.host
	// The SDK's own timeout only backs up the per-attempt context.
	p.HttpProfile.ReqTimeout = int(c.cfg.RequestTimeout/time.Second) + 5
	cl, err := cvm.NewClient(c.cred, region, p)
	if err != nil {
		return nil, c.cloudError(err)
	}
	cl.WithRequestClient("rebootbot")
	c.clients[region] = cl
	return cl, nil
}

// chainCredential asks the SDK's default provider chain for credentials,
// bounded by ctx and the request timeout: the chain's last resort is an
// HTTP call to the CVM metadata service without a timeout of its own.
func (c *CVM) chainCredential(ctx context.Context) (common.CredentialIface, *approval.CloudError) {
	type result struct {
		cred common.CredentialIface
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		cred, err := common.DefaultProviderChain().GetCredential()
		ch <- result{cred, err}
	}()
	timer := time.NewTimer(c.cfg.RequestTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			ce := c.cloudError(r.err)
			ce.Code = CodeCredentialError
			ce.Explanation, ce.Transient = Explain(CodeCredentialError)
			return nil, ce
		}
		return r.cred, nil
	case <-timer.C:
		return nil, c.clientError(CodeCredentialError, "the default credential chain did not answer in time")
	case <-ctx.Done():
		return nil, c.cloudError(ctx.Err())
	}
}

func (c *CVM) region(region string) string {
	if region == "" {
		return c.cfg.DefaultRegion
	}
	return region
}

// cloudError converts err and removes any secret that an error text might
// carry.
func (c *CVM) cloudError(err error) *approval.CloudError {
	ce := AsCloudError(err)
	if ce == nil {
		return nil
	}
	out := *ce
	out.Message = c.redact(out.Message)
	return &out
}

func (c *CVM) clientError(code, msg string) *approval.CloudError {
	return newCloudError(code, c.redact(msg), "")
}

// redact removes the secret key and session token from s.
func (c *CVM) redact(s string) string {
	for _, secret := range []string{c.cfg.SecretKey, c.cfg.SessionToken} {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// attempt is one try of an API call: it builds and signs a fresh request,
// sends it within ctx and returns the RequestId of the answer.
type attempt func(ctx context.Context) (requestID string, err error)

// retryHook is consulted after a transient failure, before the next
// attempt. It returns true when the caller has settled the call's outcome
// and no further attempt may be made.
type retryHook func(ctx context.Context, ce *approval.CloudError, err error) (settled bool)

// call runs one API call: each attempt waits for pace, runs with its own
// timeout and is reported to OnCall; transient failures are retried with
// capped exponential backoff and full jitter, up to MaxAttempts. It returns
// the RequestId of the successful attempt, or the last error. settled is
// true when hook took over the outcome.
func (c *CVM) call(ctx context.Context, action string, pace pacer, try attempt, hook retryHook) (requestID string, ce *approval.CloudError, settled bool) {
	for n := 0; ; n++ {
		done, err := pace.Start(ctx)
		if err != nil {
			return "", c.cloudError(err), false
		}
		actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		id, err := try(actx)
		cancel()
		done()
		if err == nil {
			c.cfg.OnCall(action, "")
			return id, nil, false
		}
		ce = c.cloudError(err)
		if ctx.Err() != nil {
			// The caller gave up; that is not Tencent's answer.
			ce = c.cloudError(ctx.Err())
		}
		c.cfg.OnCall(action, ce.Code)
		if ctx.Err() != nil || !ce.Transient {
			return "", ce, false
		}
		if hook != nil && hook(ctx, ce, err) {
			return "", ce, true
		}
		if n+1 >= c.cfg.MaxAttempts {
			c.log.Warn("giving up on cloud call", "action", action, "attempts", n+1, "code", ce.Code, "request_id", ce.RequestID)
			return "", ce, false
		}
		d := c.backoff(n)
		c.log.Info("retrying cloud call", "action", action, "attempt", n+1, "code", ce.Code, "request_id", ce.RequestID, "delay", d)
		if d > 0 {
			select {
			case <-c.cfg.Clock.After(d):
			case <-ctx.Done():
				return "", c.cloudError(ctx.Err()), false
			}
		}
	}
}

// backoff returns the delay before retry n+1: full jitter below
// min(MaxDelay, BaseDelay·2ⁿ).
func (c *CVM) backoff(n int) time.Duration {
	ceiling := c.cfg.MaxDelay
	if n < 32 {
		if d := c.cfg.BaseDelay << n; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return c.jitter(ceiling)
}

func fullJitter(ceiling time.Duration) time.Duration {
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

// Describe looks instances up by ID, at most 100 a call, and returns them in
// the order asked. IDs that are not well-formed instance IDs are reported
// missing without asking Tencent, whose whole call would fail on them.
func (c *CVM) Describe(ctx context.Context, region string, ids []string) ([]approval.Instance, []string, error) {
	region = c.region(region)
	ids = unique(ids)
	if len(ids) == 0 {
		return nil, nil, nil
	}
	cl, ce := c.client(ctx, region)
	if ce != nil {
		return nil, nil, asError(ce, ctx.Err())
	}
	var valid []string
	for _, id := range ids {
		if approval.ValidInstanceID(id) {
			valid = append(valid, id)
		}
	}
	seen, ce := c.describe(ctx, cl, valid)
	if ce != nil {
		return nil, nil, asError(ce, ctx.Err())
	}
	found, missing := splitFound(ids, seen)
	return found, missing, nil
}

// splitFound returns the instances of ids that seen holds, in the order
// asked, and the IDs it does not.
func splitFound(ids []string, seen map[string]approval.Instance) (found []approval.Instance, missing []string) {
	for _, id := range ids {
		if in, ok := seen[id]; ok {
			found = append(found, in)
		} else {
			missing = append(missing, id)
		}
	}
	return found, missing
}

// describe looks up well-formed IDs in calls of at most 100, with retries.
func (c *CVM) describe(ctx context.Context, cl *cvm.Client, ids []string) (map[string]approval.Instance, *approval.CloudError) {
	seen := make(map[string]approval.Instance, len(ids))
	for _, batch := range chunks(ids, MaxIDsPerCall) {
		got, ce := c.describeBatch(ctx, cl, batch, c.cfg.DescribeLimiter)
		if ce != nil {
			return nil, ce
		}
		for id, in := range got {
			seen[id] = in
		}
	}
	return seen, nil
}

// describeBatch looks up at most 100 well-formed IDs in one call, with
// retries paced by pace.
func (c *CVM) describeBatch(ctx context.Context, cl *cvm.Client, batch []string, pace pacer) (map[string]approval.Instance, *approval.CloudError) {
	var set []*cvm.Instance
	_, ce, _ := c.call(ctx, ActionDescribe, pace, func(actx context.Context) (string, error) {
		req := cvm.NewDescribeInstancesRequest()
		req.InstanceIds = common.StringPtrs(batch)
		req.Limit = common.Int64Ptr(int64(len(batch)))
		resp, err := cl.DescribeInstancesWithContext(actx, req)
		if err != nil {
			return "", err
		}
		if resp.Response == nil {
			return "", fmt.Errorf("DescribeInstances answered without a Response")
		}
		set = resp.Response.InstanceSet
		return deref(resp.Response.RequestId), nil
	}, nil)
	if ce != nil {
		return nil, ce
	}
	seen := make(map[string]approval.Instance, len(set))
	for _, raw := range set {
		if in := instanceFrom(raw); in.ID != "" {
			seen[in.ID] = in
		}
	}
	return seen, nil
}

// instanceFrom copies what rebootbot needs out of the SDK's Instance.
func instanceFrom(raw *cvm.Instance) approval.Instance {
	if raw == nil {
		return approval.Instance{}
	}
	in := approval.Instance{
		ID:                       deref(raw.InstanceId),
		Name:                     deref(raw.InstanceName),
		State:                    deref(raw.InstanceState),
		PrivateIPs:               derefAll(raw.PrivateIpAddresses),
		PublicIPs:                derefAll(raw.PublicIpAddresses),
		LatestOperation:          deref(raw.LatestOperation),
		LatestOperationState:     deref(raw.LatestOperationState),
		LatestOperationRequestID: deref(raw.LatestOperationRequestId),
		LatestOperationError:     deref(raw.LatestOperationErrorMsg),
	}
	if raw.Placement != nil {
		in.Zone = deref(raw.Placement.Zone)
	}
	for _, t := range raw.Tags {
		if t == nil || t.Key == nil {
			continue
		}
		if in.Tags == nil {
			in.Tags = make(map[string]string, len(raw.Tags))
		}
		in.Tags[*t.Key] = deref(t.Value)
	}
	return in
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func derefAll(ps []*string) []string {
	var out []string
	for _, p := range ps {
		if p != nil {
			out = append(out, *p)
		}
	}
	return out
}

// unique returns ids without duplicates or empty strings, in first-seen
// order.
func unique(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	return out
}

// chunks splits ids into consecutive slices of at most n.
func chunks(ids []string, n int) [][]string {
	var out [][]string
	for len(ids) > n {
		out = append(out, ids[:n:n])
		ids = ids[n:]
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}
