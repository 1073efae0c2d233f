// Package emulatortest starts the CVM emulator for tests and builds
// official SDK clients that talk to it over 127.0.0.1.
package emulatortest

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/cloud/emulator"
)

// The key pair Start configures when cfg names none.
const (
	SecretID  = "AKIDemulatortest0001"
	SecretKey = "emulatortestSecretKey0001"
)

// Start serves a new emulator on 127.0.0.1 for the rest of the test and
// returns it with its endpoint URL (http://127.0.0.1:port). cfg without a
// key pair gets SecretID and SecretKey. The instances are added; a bad one
// fails the test.
func Start(t testing.TB, cfg emulator.Config, ins ...emulator.Instance) (*emulator.Emulator, string) {
	t.Helper()
	if cfg.SecretID == "" && cfg.SecretKey == "" {
		cfg.SecretID, cfg.SecretKey = SecretID, SecretKey
	}
	e := emulator.New(cfg)
	if err := e.Add(ins...); err != nil {
		t.Fatalf("emulatortest: seeding the emulator: %v", err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return e, srv.URL
}

// Client returns an official SDK client for region that signs with id and
// key and talks to the emulator at endpoint (a URL such as
// http://127.0.0.1:1234, or just host:port).
func Client(t testing.TB, endpoint, region, id, key string) *cvm.Client {
	t.Helper()
	host := endpoint
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil || u.Host == "" {
			t.Fatalf("emulatortest: endpoint %q is not a URL with a host", endpoint)
		}
		host = u.Host
	}
	cpf := profile.NewClientProfile()
	cpf.HttpProfile.Scheme = "HTTP"
	cpf.HttpProfile.Endpoint = host
	cpf.HttpProfile.ReqTimeout = 30
	c, err := cvm.NewClient(common.NewCredential(id, key), region, cpf)
	if err != nil {
		t.Fatalf("emulatortest: building the CVM client: %v", err)
	}
	return c
}
