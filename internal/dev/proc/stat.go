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

package proc

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stat returns the fields of /proc/<pid>/stat after the command name, from the state on (state,
// ppid, ...), and the command name, which may hold spaces and parentheses.
func Stat(pid string) (fields []string, comm string, err error) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return nil, "", err
	}
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	return strings.Fields(string(b[end+1:])), string(b[open+1 : end]), nil
}

// Children lists the processes whose parent is this one, with those whose process handles are
// kept elsewhere (envtest's etcd and kube-apiserver).
func Children() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := strconv.Itoa(os.Getpid())
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fields, _, err := Stat(e.Name())
		if err != nil {
			continue // gone meanwhile
		}
		if len(fields) > 1 && fields[1] == self {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
