package emulator

// publicRegions are the regions the official SDK knows. Requests may name
// any of them, or any region an instance was seeded in; other regions are
// answered UnsupportedRegion.
var publicRegions = map[string]bool{
	"ap-bangkok": true, "ap-beijing": true, "ap-chengdu": true, "ap-chongqing": true,
	"ap-guangzhou": true, "ap-guangzhou-open": true, "ap-hongkong": true, "ap-jakarta": true,
	"ap-mumbai": true, "ap-nanjing": true, "ap-seoul": true, "ap-shanghai": true,
	"ap-shanghai-fsi": true, "ap-shenzhen-fsi": true, "ap-singapore": true, "ap-tokyo": true,
	"eu-frankfurt": true, "eu-moscow": true, "na-ashburn": true, "na-siliconvalley": true,
	"na-toronto": true, "sa-saopaulo": true,
}

// knownRegion reports whether requests may name region.
func (e *Emulator) knownRegion(region string) bool {
	if publicRegions[region] {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.byRegion[region]
	return ok
}
