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
	"os"
	"strconv"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// CPUByName is the CPU time (user + system, in seconds) used so far by this process ("self")
// and by each of its children, summed by command name: the control plane's etcd and
// kube-apiserver, the manager, the callback servers. Taken before and after a load, it says which
// process the machine's cores went to.
func CPUByName() map[string]float64 {
	out := map[string]float64{}
	self := strconv.Itoa(os.Getpid())
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		fields, comm, err := proc.Stat(e.Name())
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
