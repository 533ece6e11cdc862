// Command fsyncprobe measures what durable storage costs on the disk
// holding -dir, one operation after another:
//
//	dsync:   4 KiB O_DSYNC writes into one file (what `dd oflag=dsync` does)
//	deliver: what one Maildir delivery needs: create a file in tmp/, write
//	         4 KiB, fsync it, rename it into new/, fsync new/
//
// It prints one line: dsync_per_s=X deliver_per_s=Y.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func main() {
	dir := flag.String("dir", ".", "a directory on the disk to probe")
	n := flag.Int("n", 2000, "operations of each kind")
	flag.Parse()
	work, err := os.MkdirTemp(*dir, "fsyncprobe-")
	check(err)
	defer os.RemoveAll(work)
	buf := make([]byte, 4096)

	f, err := os.OpenFile(filepath.Join(work, "dsync"), os.O_CREATE|os.O_WRONLY|os.O_SYNC, 0o600)
	check(err)
	t := time.Now()
	for range *n {
		_, err := f.Write(buf)
		check(err)
	}
	dsync := float64(*n) / time.Since(t).Seconds()
	f.Close()

	tmp, nw := filepath.Join(work, "tmp"), filepath.Join(work, "new")
	check(os.Mkdir(tmp, 0o700))
	check(os.Mkdir(nw, 0o700))
	t = time.Now()
	for i := range *n {
		name := fmt.Sprintf("m%d", i)
		f, err := os.OpenFile(filepath.Join(tmp, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		check(err)
		_, err = f.Write(buf)
		check(err)
		check(f.Sync())
		check(f.Close())
		check(os.Rename(filepath.Join(tmp, name), filepath.Join(nw, name)))
		d, err := os.Open(nw)
		check(err)
		check(d.Sync())
		d.Close()
	}
	deliver := float64(*n) / time.Since(t).Seconds()
	fmt.Printf("dsync_per_s=%.0f deliver_per_s=%.0f\n", dsync, deliver)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "fsyncprobe:", err)
		os.Exit(1)
	}
}
