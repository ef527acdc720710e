/*
Copyright 2026 The WeChat QR Code Operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package harness

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// stat returns the fields of /proc/<pid>/stat after the command name (which may hold spaces and
// parentheses), and the command name.
func stat(pid string) (fields []string, comm string, err error) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return nil, "", err
	}
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	return strings.Fields(string(b[end+1:])), string(b[open+1 : end]), nil
}

// CPUByName is the CPU time (user + system, in seconds) used so far by this process ("self")
// and by each of its children, summed by command name: the control plane's etcd and
// kube-apiserver, the manager, the callback servers. Taken before and after a load, it says which
// process the machine's cores went to.
func CPUByName() map[string]float64 {
	out := map[string]float64{}
	self := strconv.Itoa(os.Getpid())
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		fields, comm, err := stat(e.Name())
		// Fields after the name: state, ppid, ... utime is the 12th, stime the 13th.
		if err != nil || len(fields) < 13 {
			continue
		}
		switch {
		case e.Name() == self:
			comm = "self"
		case fields[1] != self:
			continue
		}
		utime, _ := strconv.ParseFloat(fields[11], 64)
		stime, _ := strconv.ParseFloat(fields[12], 64)
		out[comm] += (utime + stime) / clockTicks
	}
	return out
}
