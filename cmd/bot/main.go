package main
import (
 _ "github.com/slack-go/slack"
 _ "github.com/slack-go/slack/socketmode"
 _ "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"
 _ "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
 _ "go.etcd.io/bbolt"
 _ "go.yaml.in/yaml/v3"
)
func main(){}
