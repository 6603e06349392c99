// xds-probe connects to istiod's plaintext xDS port as a sidecar in one cluster, network and
// locality, and writes, as JSON, the endpoints istiod sends it for every EDS cluster, each with the
// priority and locality istiod gave it: what an Envoy there would load-balance to, in the order it
// would fail over. Built by build-tools.sh inside the pinned istio module (with go build -overlay),
// so it speaks the same xDS as the pilot-discovery it probes. Used by istiod.py (check 5).
//
// Usage: xds-probe -xds ADDR -cluster NAME -network ID [-region R -zone Z -subzone S] -out FILE
// [-timeout 30s] (a file, not stdout: Istio's log package writes to stdout)
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/structpb"

	v3 "istio.io/istio/pilot/pkg/xds/v3"
	"istio.io/istio/pkg/adsc"
)

type endpoint struct {
	Address string `json:"address"`
	Port    uint32 `json:"port"`
	Weight  uint32 `json:"weight"`
	// Priority is the LocalityLbEndpoints' priority: 0 first, higher only when all before fail.
	Priority uint32 `json:"priority"`
	// Locality is region/zone/subzone, as istiod grouped the endpoint.
	Locality string `json:"locality"`
}

func main() {
	xds := flag.String("xds", "", "istiod's plaintext xDS address")
	cluster := flag.String("cluster", "", "the proxy's cluster (CLUSTER_ID)")
	network := flag.String("network", "", "the proxy's network (NETWORK)")
	region := flag.String("region", "", "the proxy's region")
	zone := flag.String("zone", "", "the proxy's zone")
	subzone := flag.String("subzone", "", "the proxy's subzone")
	outFile := flag.String("out", "", "where to write the endpoints")
	timeout := flag.Duration("timeout", 30*time.Second, "how long to wait for endpoints")
	flag.Parse()
	if *xds == "" || *cluster == "" || *outFile == "" {
		fmt.Fprintln(os.Stderr, "usage: xds-probe -xds ADDR -cluster NAME -network ID -out FILE")
		os.Exit(2)
	}
	locality := &core.Locality{Region: *region, Zone: *zone, SubZone: *subzone}
	out, err := probe(*xds, *cluster, *network, locality, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xds-probe:", err)
		os.Exit(1)
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err == nil {
		err = os.WriteFile(*outFile, data, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "xds-probe:", err)
		os.Exit(1)
	}
}

func probe(addr, cluster, network string, locality *core.Locality, timeout time.Duration) (map[string][]endpoint, error) {
	// istiod takes a proxy's locality from its labels first (as the injector sets them from the
	// node), then from the xDS node's locality; both say the same here.
	labels := map[string]any{}
	for key, value := range map[string]string{
		"topology.kubernetes.io/region": locality.Region,
		"topology.kubernetes.io/zone":   locality.Zone,
		"topology.istio.io/subzone":     locality.SubZone,
	} {
		if value != "" {
			labels[key] = value
		}
	}
	meta, err := structpb.NewStruct(map[string]any{"CLUSTER_ID": cluster, "NETWORK": network, "LABELS": labels})
	if err != nil {
		return nil, err
	}
	client, err := adsc.New(addr, &adsc.ADSConfig{
		Config: adsc.Config{
			ClientName: "xds-probe",
			Namespace:  "xds-probe",
			Workload:   "xds-probe-0",
			IP:         "127.0.0.2",
			Meta:       meta,
			Locality:   locality,
		},
		// CDS only: adsc asks for the endpoints of every EDS cluster it is sent.
		InitialDiscoveryRequests: []*discovery.DiscoveryRequest{{TypeUrl: v3.ClusterType}},
	})
	if err != nil {
		return nil, err
	}
	defer client.Close()
	if err := client.Run(); err != nil {
		return nil, err
	}
	if _, err := client.Wait(timeout, v3.EndpointType); err != nil {
		return nil, err
	}
	out := map[string][]endpoint{}
	for name, assignment := range client.GetEndpoints() {
		list := []endpoint{}
		for _, group := range assignment.GetEndpoints() {
			l := group.GetLocality()
			where := strings.Join([]string{l.GetRegion(), l.GetZone(), l.GetSubZone()}, "/")
			for _, lb := range group.GetLbEndpoints() {
				socket := lb.GetEndpoint().GetAddress().GetSocketAddress()
				list = append(list, endpoint{
					socket.GetAddress(), socket.GetPortValue(), lb.GetLoadBalancingWeight().GetValue(),
					group.GetPriority(), where,
				})
			}
		}
		sort.Slice(list, func(i, j int) bool {
			if list[i].Priority != list[j].Priority {
				return list[i].Priority < list[j].Priority
			}
			return list[i].Address < list[j].Address
		})
		out[name] = list
	}
	return out, nil
}
