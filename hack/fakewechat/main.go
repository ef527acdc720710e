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

// Command fakewechat serves the fake WeChat of internal/wechattest as its own process, for a
// local dev environment, end-to-end tests and benchmarks: go run ./hack/fakewechat. It is beside
// hack/dev, not in cmd/, which holds what ships.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

type accountsFlag [][2]string

func (a *accountsFlag) String() string { return fmt.Sprint(len(*a), " accounts") }

func (a *accountsFlag) Set(v string) error {
	for _, pair := range strings.Split(v, ",") {
		id, secret, ok := strings.Cut(pair, ":")
		if !ok || id == "" || secret == "" {
			return fmt.Errorf("want appid:secret, got %q", pair)
		}
		*a = append(*a, [2]string{id, secret})
	}
	return nil
}

func main() {
	var accounts accountsFlag
	opts := wechattest.Options{}
	flag.StringVar(&opts.Addr, "listen", "127.0.0.1:8089", "address to listen on")
	flag.Var(&accounts, "account", "an account as appid:secret (repeatable, or comma-separated)")
	flag.DurationVar(&opts.Latency, "latency", 0, "latency added to every answer")
	flag.IntVar(&opts.CreateDailyQuota, "create-quota", wechattest.DefaultCreateDailyQuota, "qrcode/create calls per account per day")
	flag.IntVar(&opts.PermanentCap, "permanent-cap", wechattest.DefaultPermanentCap, "permanent codes per account")
	flag.Uint64Var(&opts.Seed, "seed", 0, "seed of tokens, tickets and random faults (0: random)")
	faultRate := flag.Float64("error-rate", 0, "probability that a call fails with -error-code")
	faultCode := flag.Int("error-code", -1, "errcode of random failures")
	faultEndpoint := flag.String("error-endpoint", "", "endpoint path the random failures apply to (empty: all)")
	flag.Parse()

	srv, err := wechattest.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, a := range accounts {
		srv.AddAccount(a[0], a[1])
	}
	srv.SetFaultRate(*faultEndpoint, *faultRate, wechattest.Fault{Errcode: *faultCode})
	fmt.Println("fake WeChat listening on", srv.URL)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	srv.Close()
}
