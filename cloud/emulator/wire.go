package emulator

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"sort"
	"time"
)

// The JSON shapes of the answers, with the field names of the SDK's
// cvm/v20170312 models.

type describeInstancesResult struct {
	TotalCount  int           `json:"TotalCount"`
	InstanceSet []apiInstance `json:"InstanceSet"`
}

type describeInstancesStatusResult struct {
	TotalCount        int                 `json:"TotalCount"`
	InstanceStatusSet []apiInstanceStatus `json:"InstanceStatusSet"`
}

type apiInstanceStatus struct {
	InstanceID    string `json:"InstanceId"`
	InstanceState string `json:"InstanceState"`
}

type apiPlacement struct {
	Zone      string `json:"Zone"`
	ProjectID int    `json:"ProjectId"`
}

type apiTag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type apiInstance struct {
	Placement                apiPlacement `json:"Placement"`
	InstanceID               string       `json:"InstanceId"`
	InstanceType             string       `json:"InstanceType"`
	CPU                      int          `json:"CPU"`
	Memory                   int          `json:"Memory"`
	RestrictState            string       `json:"RestrictState"`
	InstanceName             string       `json:"InstanceName"`
	InstanceChargeType       string       `json:"InstanceChargeType"`
	PrivateIPAddresses       []string     `json:"PrivateIpAddresses"`
	PublicIPAddresses        []string     `json:"PublicIpAddresses"`
	ImageID                  string       `json:"ImageId"`
	RenewFlag                *string      `json:"RenewFlag"`
	CreatedTime              string       `json:"CreatedTime"`
	ExpiredTime              *string      `json:"ExpiredTime"`
	OsName                   string       `json:"OsName"`
	InstanceState            string       `json:"InstanceState"`
	Tags                     []apiTag     `json:"Tags"`
	StopChargingMode         string       `json:"StopChargingMode"`
	UUID                     string       `json:"Uuid"`
	LatestOperation          *string      `json:"LatestOperation"`
	LatestOperationState     *string      `json:"LatestOperationState"`
	LatestOperationRequestID *string      `json:"LatestOperationRequestId"`
	LatestOperationErrorMsg  *string      `json:"LatestOperationErrorMsg"`
	DisableAPITermination    bool         `json:"DisableApiTermination"`
	DefaultLoginUser         string       `json:"DefaultLoginUser"`
	DefaultLoginPort         int          `json:"DefaultLoginPort"`
}

// chargeType is every emulated instance's billing mode.
const chargeType = "POSTPAID_BY_HOUR"

// facts are the attributes of an instance that nobody seeds: derived from
// its ID so that they stay the same from run to run.
type facts struct {
	instanceType string
	cpu, memory  int
	osName       string
	imageID      string
	uuid         string
	created      string
}

var instanceTypes = []struct {
	name        string
	cpu, memory int
}{
	{"S5.MEDIUM4", 2, 4}, {"S5.LARGE8", 4, 8}, {"S5.2XLARGE16", 8, 16},
	{"SA3.LARGE8", 4, 8}, {"M5.LARGE32", 4, 32}, {"C6.2XLARGE16", 8, 16},
}

var osNames = []string{
	"TencentOS Server 3.1 (TK4)", "Ubuntu Server 22.04 LTS 64bit", "Debian 12.4 64bit", "Rocky Linux 9.3 64bit",
}

func factsOf(id string, created time.Time) *facts {
	sum := sha256.Sum256([]byte(id))
	n := binary.BigEndian.Uint32(sum[:4])
	t := instanceTypes[n%uint32(len(instanceTypes))]
	u := sum[4:20]
	ustr := hex.EncodeToString(u)
	return &facts{
		instanceType: t.name,
		cpu:          t.cpu,
		memory:       t.memory,
		osName:       osNames[(n/7)%uint32(len(osNames))],
		imageID:      "img-" + hex.EncodeToString(sum[20:24]),
		uuid:         ustr[0:8] + "-" + ustr[8:12] + "-" + ustr[12:16] + "-" + ustr[16:20] + "-" + ustr[20:32],
		created:      created.UTC().Format("2006-01-02T15:04:05Z"),
	}
}

// snapshot is what DescribeInstances copies out of the lock.
type snapshot struct {
	Status
	facts *facts
}

// api renders a snapshot as the API's Instance.
func (s *snapshot) api() apiInstance {
	tags := make([]apiTag, 0, len(s.Tags))
	for k, v := range s.Tags {
		tags = append(tags, apiTag{Key: k, Value: v})
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].Key < tags[j].Key })
	return apiInstance{
		Placement:                apiPlacement{Zone: s.Zone},
		InstanceID:               s.ID,
		InstanceType:             s.facts.instanceType,
		CPU:                      s.facts.cpu,
		Memory:                   s.facts.memory,
		RestrictState:            "NORMAL",
		InstanceName:             s.Name,
		InstanceChargeType:       chargeType,
		PrivateIPAddresses:       nonNil(s.PrivateIPs),
		PublicIPAddresses:        nilIfEmpty(s.PublicIPs),
		ImageID:                  s.facts.imageID,
		CreatedTime:              s.facts.created,
		OsName:                   s.facts.osName,
		InstanceState:            s.State,
		Tags:                     tags,
		StopChargingMode:         "NOT_APPLICABLE",
		UUID:                     s.facts.uuid,
		LatestOperation:          nullable(s.LatestOperation),
		LatestOperationState:     nullable(s.LatestOperationState),
		LatestOperationRequestID: nullable(s.LatestOperationRequestID),
		LatestOperationErrorMsg:  nullable(s.LatestOperationErrorMsg),
		DefaultLoginUser:         "root",
		DefaultLoginPort:         22,
	}
}

// nullable renders "" as JSON null, as the API does for an instance with
// no latest operation.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
