package cloud

import "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/regions"

// knownRegions are the regions the official SDK names.
var knownRegions = map[string]bool{
	regions.Bangkok: true, regions.Beijing: true, regions.Chengdu: true, regions.Chongqing: true,
	regions.Guangzhou: true, regions.GuangzhouOpen: true, regions.HongKong: true, regions.Jakarta: true,
	regions.Mumbai: true, regions.Seoul: true, regions.Shanghai: true, regions.Nanjing: true,
	regions.ShanghaiFSI: true, regions.ShenzhenFSI: true, regions.Singapore: true, regions.Tokyo: true,
	regions.Frankfurt: true, regions.Moscow: true, regions.Ashburn: true, regions.SiliconValley: true,
	regions.Toronto: true, regions.SaoPaulo: true,
}

// KnownRegion reports whether region is one the official SDK names. A
// region it does not know may be new, or an emulator's, or a typing
// mistake that would fail every request; the bot reports it at start-up.
func KnownRegion(region string) bool { return knownRegions[region] }

// NearestRegion returns the known region closest in spelling to region,
// for a hint next to an unknown one.
func NearestRegion(region string) string {
	best, bestDist := "", -1
	for r := range knownRegions {
		d := editDistance(region, r)
		if bestDist < 0 || d < bestDist || (d == bestDist && r < best) {
			best, bestDist = r, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes
// (region names are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
