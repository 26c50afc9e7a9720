// cni-runtime: the test suite's CNI runtime. It executes a network
// configuration list the way container runtimes do, through libcni (the
// library under containerd's go-cni, CRI-O's ocicni and podman's CNI
// backend): plugin lookup in CNI_PATH, per-plugin configuration with
// prevResult, the result cache that CHECK and DEL read, version checks.
//
//	cni-runtime add|check|del CONFLIST CONTAINERID NETNS IFNAME
//	cni-runtime gc CONFLIST [CONTAINERID/IFNAME ...]   (the valid attachments)
//	cni-runtime status CONFLIST
//
// CNI_PATH lists the plugin directories; CNI_CACHE_DIR (default
// /var/lib/cni) holds libcni's cache. ADD prints the result as JSON. A
// failure prints the plugin's error object as JSON and exits 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

func fail(err error) {
	var e *types.Error
	if !errors.As(err, &e) {
		e = &types.Error{Code: 999, Msg: err.Error()}
	}
	out, _ := json.Marshal(e)
	fmt.Println(string(out))
	os.Exit(1)
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: cni-runtime add|check|del CONFLIST CONTAINERID NETNS IFNAME | gc CONFLIST [ID/IFNAME...] | status CONFLIST")
		os.Exit(2)
	}
	command, file := os.Args[1], os.Args[2]
	list, err := libcni.ConfListFromFile(file)
	if err != nil {
		fail(err)
	}
	cache := os.Getenv("CNI_CACHE_DIR")
	if cache == "" {
		cache = "/var/lib/cni"
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), cache, nil)
	ctx := context.Background()

	switch command {
	case "add", "check", "del":
		if len(os.Args) != 6 {
			fmt.Fprintln(os.Stderr, "usage: cni-runtime add|check|del CONFLIST CONTAINERID NETNS IFNAME")
			os.Exit(2)
		}
		rt := &libcni.RuntimeConf{ContainerID: os.Args[3], NetNS: os.Args[4], IfName: os.Args[5]}
		switch command {
		case "add":
			result, err := cni.AddNetworkList(ctx, list, rt)
			if err != nil {
				fail(err)
			}
			if err := result.Print(); err != nil {
				fail(err)
			}
		case "check":
			if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
				fail(err)
			}
		case "del":
			if err := cni.DelNetworkList(ctx, list, rt); err != nil {
				fail(err)
			}
		}
	case "gc":
		var valid []types.GCAttachment
		for _, a := range os.Args[3:] {
			id, ifname, ok := strings.Cut(a, "/")
			if !ok {
				fmt.Fprintln(os.Stderr, "a valid attachment is CONTAINERID/IFNAME")
				os.Exit(2)
			}
			valid = append(valid, types.GCAttachment{ContainerID: id, IfName: ifname})
		}
		if err := cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: valid}); err != nil {
			fail(err)
		}
	case "status":
		if err := cni.GetStatusNetworkList(ctx, list); err != nil {
			fail(err)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown command", command)
		os.Exit(2)
	}
}
