// hostile misbehaves as MODE says, to prove memgate contains it:
//
//	forkbomb  starts copies of itself without end
//	alloc     keeps 8 MiB more for every request
//	daemon    leaves a setsid daemon behind that sleeps forever
//	hide      leaves one behind with an empty environment (no mark)
//	disk      writes one file without end
//	snoop     prints what it can read of memgate's environment
//	net       tries to reach TARGET, a port memgate's host listens on
package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var kept [][]byte
var mu sync.Mutex

func main() {
	if os.Getenv("HOSTILE_CHILD") == "sleep" {
		time.Sleep(time.Hour)
		return
	}
	mode := os.Getenv("MODE")
	switch mode {
	case "forkbomb":
		go func() {
			for i := 0; ; i++ {
				cmd := exec.Command("/proc/self/exe")
				cmd.Env = append(os.Environ(), "HOSTILE_CHILD=sleep")
				if err := cmd.Start(); err != nil {
					fmt.Println("fork bomb stopped after", i, "children:", err)
					return
				}
			}
		}()
	case "daemon":
		cmd := exec.Command("/proc/self/exe")
		cmd.Env = append(os.Environ(), "HOSTILE_CHILD=sleep")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err == nil {
			fmt.Println("daemon pid", cmd.Process.Pid)
		}
	case "hide":
		cmd := exec.Command("/proc/self/exe")
		cmd.Env = []string{"HOSTILE_CHILD=sleep"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err == nil {
			fmt.Println("hidden pid", cmd.Process.Pid)
		}
	case "disk":
		go func() {
			f, err := os.CreateTemp("", "hostile-*")
			if err != nil {
				fmt.Println(err)
				return
			}
			defer os.Remove(f.Name())
			buf := make([]byte, 1<<20)
			for n := 0; ; n++ {
				if _, err := f.Write(buf); err != nil {
					fmt.Println("disk filler stopped after", n, "MiB:", err)
					return
				}
			}
		}()
	case "net":
		c, err := net.DialTimeout("tcp", os.Getenv("TARGET"), 2*time.Second)
		if err == nil {
			c.Close()
			fmt.Println("REACHED", os.Getenv("TARGET"))
		} else {
			fmt.Println("NO ROUTE:", err)
		}
	case "snoop":
		fmt.Println("ENV:", strings.Join(os.Environ(), " "))
		for _, pid := range []int{1, os.Getppid()} {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
			fmt.Printf("PID %d ENVIRON: %s (err %v)\n", pid, strings.ReplaceAll(string(b), "\x00", " "), err)
		}
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(os.Getppid()) + "/cmdline"); err == nil {
			fmt.Println("PARENT:", strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if mode == "alloc" {
			b := make([]byte, 8<<20)
			for i := range b {
				b[i] = 1
			}
			mu.Lock()
			kept = append(kept, b)
			mu.Unlock()
		}
		w.Write([]byte("ok"))
	})
	http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
}
