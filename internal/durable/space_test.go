package durable

import "testing"

func TestSpaceFloor(t *testing.T) {
	dir := t.TempDir()
	free, err := FreeBytes(dir)
	if err != nil || free <= 0 {
		t.Fatalf("FreeBytes = %d, %v", free, err)
	}
	if NewSpaceFloor(0, dir).Low() {
		t.Error("a zero floor reported low")
	}
	if NewSpaceFloor(1, dir).Low() {
		t.Error("one byte floor reported low on a disk with space")
	}
	if !NewSpaceFloor(free*2+1<<40, dir).Low() {
		t.Error("a floor above the disk's free space not reported low")
	}
	if NewSpaceFloor(1<<62, dir+"/missing").Low() {
		t.Error("a directory that cannot be examined reported low")
	}
}
