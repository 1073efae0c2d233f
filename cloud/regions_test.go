package cloud

import "testing"

func TestKnownRegion(t *testing.T) {
	tests := []struct {
		region  string
		known   bool
		nearest string
	}{
		{"ap-guangzhou", true, "ap-guangzhou"},
		{"na-siliconvalley", true, "na-siliconvalley"},
		{"ap-guangzou", false, "ap-guangzhou"},
		{"ap-shangai", false, "ap-shanghai"},
		{"eu-frankfort", false, "eu-frankfurt"},
	}
	for _, tt := range tests {
		t.Run(tt.region, func(t *testing.T) {
			if got := KnownRegion(tt.region); got != tt.known {
				t.Errorf("KnownRegion(%q) = %v, want %v", tt.region, got, tt.known)
			}
			if got := NearestRegion(tt.region); got != tt.nearest {
				t.Errorf("NearestRegion(%q) = %q, want %q", tt.region, got, tt.nearest)
			}
		})
	}
}
