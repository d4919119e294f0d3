using System.Net;
using Prometheus;
using Softnet.Packets;
using Softnet.Topology;

namespace Softnet.Cli;

/// <summary>
/// `softnet run --metrics HOST:PORT`: a Prometheus endpoint (prometheus-net's MetricServer at /metrics) whose values
/// are read from the running path just before each scrape: per bound port (Softnet's and the kernel's counters), per
/// RX queue, per CPU (softnet_stat), per iptables rule, conntrack entries and drops by reason, per namespace.
/// </summary>
internal sealed class RunMetrics : IDisposable
{
    private readonly MetricServer _server;

    private RunMetrics(MetricServer server) => _server = server;

    public static RunMetrics Start(string endpoint, LiveRun run)
    {
        int colon = endpoint.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(endpoint[(colon + 1)..], out int port) || port is <= 0 or > 65535)
            throw new ArgumentException($"--metrics '{endpoint}': expected HOST:PORT, e.g. 127.0.0.1:9100");
        string host = endpoint[..colon];
        if (!IPAddress.TryParse(host, out _) && host != "localhost") throw new ArgumentException($"--metrics '{endpoint}': HOST must be an address");

        var registry = Metrics.NewCustomRegistry();
        var f = Metrics.WithCustomRegistry(registry);
        var portRx = f.CreateCounter("softnet_port_rx_packets_total", "Frames a live port handed to Softnet", "bind", "port");
        var portRxBytes = f.CreateCounter("softnet_port_rx_bytes_total", "Bytes a live port handed to Softnet", "bind", "port");
        var portKernelDrop = f.CreateCounter("softnet_port_kernel_rx_dropped_total", "Frames the kernel dropped before the port's ring (tp_drops / XDP_STATISTICS)", "bind", "port");
        var portTx = f.CreateCounter("softnet_port_tx_packets_total", "Frames sent on a live port", "bind", "port");
        var portTxFull = f.CreateCounter("softnet_port_tx_ring_full_total", "Frames not sent: the port's TX ring was full", "bind", "port");
        var portDown = f.CreateCounter("softnet_port_link_down_events_total", "Times the bound interface went down", "bind", "port");
        var queueDrops = f.CreateCounter("softnet_rx_queue_drops_total", "Drops in a virtual NIC RX queue, by reason", "queue", "reason");
        var cpuProcessed = f.CreateCounter("softnet_stat_processed_total", "softnet_stat column 1: packets processed by net_rx_action", "cpu");
        var cpuDropped = f.CreateCounter("softnet_stat_dropped_total", "softnet_stat column 2: backlog drops", "cpu");
        var cpuSqueeze = f.CreateCounter("softnet_stat_time_squeeze_total", "softnet_stat column 3: rounds out of budget or time", "cpu");
        var rulePackets = f.CreateCounter("softnet_iptables_rule_packets_total", "Packets matched by an iptables rule (iptables -nvL pkts)", "namespace", "family", "table", "chain", "rule");
        var ruleBytes = f.CreateCounter("softnet_iptables_rule_bytes_total", "Bytes matched by an iptables rule", "namespace", "family", "table", "chain", "rule");
        var conntrack = f.CreateGauge("softnet_conntrack_entries", "Entries in the namespace's conntrack table (conntrack -C)", "namespace");
        var nsDrops = f.CreateCounter("softnet_drops_total", "Packets dropped in a namespace, by SKB_DROP_REASON", "namespace", "reason");
        var devRx = f.CreateCounter("softnet_device_rx_packets_total", "ip -s link RX packets", "namespace", "device");
        var devTx = f.CreateCounter("softnet_device_tx_packets_total", "ip -s link TX packets", "namespace", "device");

        registry.AddBeforeCollectCallback(() =>
        {
            // The datapath only adds to these counters; a scrape reads them between its updates (64-bit reads are atomic).
            try
            {
                foreach (var (b, k, s) in run.Ports)
                {
                    string kind = k.ToString().ToLowerInvariant();
                    string bind = b.ToString();
                    portRx.WithLabels(bind, kind).IncTo(s.RxPackets);
                    portRxBytes.WithLabels(bind, kind).IncTo(s.RxBytes);
                    portKernelDrop.WithLabels(bind, kind).IncTo(s.KernelRxDropped);
                    portTx.WithLabels(bind, kind).IncTo(s.TxPackets);
                    portTxFull.WithLabels(bind, kind).IncTo(s.TxRingFull);
                    portDown.WithLabels(bind, kind).IncTo(s.LinkDownEvents);
                }
                int queue = 0;
                foreach (var nic in run.Nics)
                    foreach (var q in nic.Queues)
                    {
                        string label = (queue++).ToString();
                        foreach (var (reason, n) in q.Drops.NonZero())
                            queueDrops.WithLabels(label, DropReasons.Name(reason)).IncTo(n);
                    }
                foreach (var engine in run.Engines)
                    foreach (var c in engine.Cpus)
                    {
                        string cpu = c.Id.ToString();
                        cpuProcessed.WithLabels(cpu).IncTo(c.Processed);
                        cpuDropped.WithLabels(cpu).IncTo(c.Dropped);
                        cpuSqueeze.WithLabels(cpu).IncTo(c.TimeSqueeze);
                    }
                foreach (var ns in run.Scenario.Namespaces)
                {
                    foreach (var (reason, n) in ns.Counters.Drops.NonZero()) nsDrops.WithLabels(ns.Name, DropReasons.Name(reason)).IncTo(n);
                    foreach (var d in ns.Devices)
                    {
                        devRx.WithLabels(ns.Name, d.Name).IncTo(d.RxPackets);
                        devTx.WithLabels(ns.Name, d.Name).IncTo(d.TxPackets);
                    }
                    if (ns.HasIptables) conntrack.WithLabels(ns.Name).Set(ns.Netfilter.Conntrack.Count);
                    var tables = ns.HasIptables ? ns.Netfilter.Tables : [];
                    foreach (var table in ns.Netfilter6 is { } nf6 ? tables.Concat(nf6.Tables) : tables)
                        foreach (var chain in table.Chains)
                            for (int i = 0; i < chain.Rules.Count; i++)
                            {
                                var r = chain.Rules[i];
                                string[] labels = [ns.Name, table.Family == Softnet.Netfilter.NfProto.Ipv6 ? "ipv6" : "ipv4", table.Name, chain.Name, (i + 1).ToString()];
                                rulePackets.WithLabels(labels).IncTo(r.Packets);
                                ruleBytes.WithLabels(labels).IncTo(r.Bytes);
                            }
                }
            }
            catch (InvalidOperationException)
            {
                // A collection changed under the scrape (a namespace's first conntrack entry, a new label): the next
                // scrape reads it.
            }
        });
        var server = new MetricServer(host, port, "metrics/", registry);
        try
        {
            server.Start();
        }
        catch (HttpListenerException e)
        {
            throw new ArgumentException($"--metrics {endpoint}: cannot listen ({e.Message})");
        }
        return new RunMetrics(server);
    }

    public void Dispose() => _server.Dispose();
}
