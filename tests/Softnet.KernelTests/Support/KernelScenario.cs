using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Softnet.Capture;

namespace Softnet.KernelTests.Support;

// Kernel facts this harness relies on, checked on Linux 6.18 with iptables 1.8.9 (nf_tables), one veth pair per
// link, frames injected with AF_PACKET on the peer of the arrival device:
//
// * IPv6 flaps captures: a namespace sends router solicitations, DAD and MLD reports as soon as a link comes up.
//   Every scenario namespace sets net.ipv6.conf.{all,default}.disable_ipv6=1 in its sysctl.conf, and the harness
//   applies sysctl.conf BEFORE ip.batch brings links up (links.batch only creates them, down). Writing `all`
//   reaches devices that already exist; `default` covers the bridges ip.batch creates later.
// * A bridge sends IGMP/MLD queries and reports unless created with `mcast_snooping 0`; with STP off (the
//   default) its ports forward at once. A bridge takes the lowest port MAC unless given one: ip.batch sets every
//   MAC (veth MACs are random otherwise).
// * Any next hop without a permanent neighbour entry makes the kernel ARP (and the ARP timing flaps): ip.batch
//   has `neigh add ... nud permanent` for every next hop, in both directions.
// * A router sends an ICMP redirect when it routes a packet back out the interface it came in on (pod -> service
//   -> pod on the same bridge). send_redirects is an OR of `all` and the device: sysctl.conf sets both `all` and
//   `default` to 0 before the bridge exists.
// * Locally delivered TCP/UDP gets a RST / ICMP port unreachable from the kernel; Softnet has no local stack yet.
//   The endpoint namespaces (clients, containers, pods, the wire) therefore drop everything in raw PREROUTING:
//   silent, and without conntrack (a namespace tracks connections only once a loaded rule needs conntrack: nat,
//   -m conntrack/state; raw DROP does not, so `conntrack -L` there is empty). Scenarios send no traffic that
//   is locally delivered to a router namespace unless a rule drops or REJECTs it first.
// * ICMP errors the kernel builds (REJECT icmp-*, icmp_send) carry an IP ID from ip_idents with a random key:
//   ScenarioCompare ignores the outer IP ID and header checksum of ICMP errors. REJECT --reject-with tcp-reset
//   builds its RST with DF set and ID 0 (nf_reject_iphdr_put): stable.
// * REJECT --reject-with tcp-reset sends its RST CHECKSUM_PARTIAL (the field holds only the pseudo-header sum)
//   and veth never completes it (NETIF_F_HW_CSUM): both captures show the partial value. ScenarioCompare completes
//   such a field before comparing; Softnet writes the full checksum.
// * Replies the kernel builds for REJECT leave through the OUTPUT path: filter OUTPUT's policy counter counts them.
//   REJECT in FORWARD sees the packet after ip_forward decremented its TTL, so the ICMP error quotes TTL 63.
//   A rejected or dropped packet's conntrack entry is never confirmed: no entry for it in `conntrack -L`.
// * A RST answering a SYN (SYN_SENT) removes the unassured entry at once; a RST on an ASSURED connection leaves
//   it in CLOSE (10 s). SYN then SYN-ACK with no final ACK stays SYN_RECV.
// * nf_conntrack_tcp_loose=1 (the default): a mid-stream ACK with no connection is picked up as ESTABLISHED
//   (ctstate NEW for the rules). SYN+FIN is INVALID (no conntrack, so no NAT either). A bad TCP checksum is
//   INVALID too (nf_conntrack_checksum=1, frames from a veth are CHECKSUM_NONE).
// * net.netfilter.nf_conntrack_max cannot be written inside a namespace (EINVAL on 6.18, even below the init
//   value): scenarios leave it out. Per-namespace conntrack timeouts and nf_conntrack_tcp_loose can be set.
// * LOG in a non-init namespace logs nothing (net.netfilter.nf_log_all_netns=0) but its rule still counts.
// * CONFIG_BRIDGE_NETFILTER=y here, and bridge-nf-call-iptables defaults to 1 in every namespace (Softnet's default
//   is 0, a kernel without br_netfilter: the docker-host and kube-node sysctl.conf set it). br_nf_pre_routing runs
//   the IPv4 PREROUTING hooks (in-interface: the bridge) on every IPv4 frame a port receives, also those addressed
//   to the bridge itself: a pod's reply is de-NATed before the bridge's rx tap sees it, and ip_sabotage_in keeps
//   the IP layer from running PREROUTING again. When that DNAT moves the destination to a host routed out the same
//   bridge (pod -> ClusterIP -> pod), the frame is bridged, not routed: TTL kept, destination MAC from the
//   neighbour's cached header, source MAC the sender's, FORWARD/POSTROUTING with -i/-o the bridge, nothing on the
//   bridge's own taps (the neighbour was used before, so its hh cache is filled).
// * `conntrack -L` prints entries on stdout and "conntrack v1.4.7 (conntrack-tools): N flow entries have been
//   shown." on stderr; entries come in hash order (compared as a set), their third column is the remaining
//   timeout in seconds (real time here: normalised when comparing).
// * `iptables-save -c` prints tables in its own fixed order (raw, filter, nat, ... as the kernel lists them) with
//   "# Generated/Completed" lines that carry the date.
// * Captures: one ETH_P_ALL packet socket per namespace sees every device's frames, direction from the
//   sockaddr_ll packet type (PACKET_OUTGOING = tx): what `tcpdump -p -Q in|out -i DEV` sees, without the
//   promiscuous mode tcpdump would otherwise set (promiscuity changes what a bridge passes up). One process
//   captures and injects, so no capture can start late. Loopback is not captured.
// * The injected frames are transmitted by DEV's veth peer, so they also appear in the peer's tx capture.
// * nstat.txt is `nstat -asz` in the namespace: absolute values (-a), zeros too (-z), nstat's history file left alone
//   (-s). Besides the counters Softnet names it prints IcmpMsgInTypeN/OutTypeN, IpExtInNoECTPkts/ECT/CE and the
//   *Octets of broadcast and multicast; ScenarioCompare compares only the names Softnet's file has (NstatScope).
// * IPv6: a namespace where IPv6 stays on sends MLDv2 reports (robustness retransmissions up to ~2 s after link up)
//   and, without accept_dad=0 on the device, DAD probes; the harness waits Ipv6SettleMs before the first frame and
//   then takes an nstat baseline, so nstat.txt holds what the run moved. `ip -batch` takes no options: a `-6 ...`
//   line of ip.batch runs as its own `ip -n NS -6 ...`. Flow labels of what the kernel builds are random unless
//   net.ipv6.auto_flowlabels = 0 (FlowLabelKernelTests compares them by shape: ScenarioCompareOptions.CanonicalFlowLabels).
//   A non-forwarding namespace with IPv6 on sends router solicitations at link up and
//   again 4 s later (and on, backing off) unless router_solicitations = 0. Softnet models that bring-up
//   (Ip/Ipv6Addrconf, compared by Ipv6BringUpKernelTests) but a replay starts from the settled state, as this harness
//   starts after Ipv6SettleMs; a solicitation due later in the run would be the kernel's alone. Neighbour timers due in the same timer-wheel
//   tick (~32 ms at HZ 250 for 1 s timers) fire in either order: a capture keeps unresolved next hops on one link
//   apart in time.
// * Counting facts seen on 6.18 with this harness: br_netfilter's br_validate_ipv4 leaves IpInReceives alone (a frame
//   bridged through FORWARD moves no Ip counter; one passed up to the bridge counts in ip_rcv); ip_forward counts
//   IpForwDatagrams after the TTL check and before the MTU check and FORWARD (a DF-too-big or FORWARD-dropped datagram
//   counts); ip_error and icmp_send share the sender's inet_peer tokens (the third no-route ICMP from one source in a
//   burst is OutRateLimitHost); an ICMP error about UDP with no socket is IcmpInErrors (udp_err); a UDP datagram
//   to a closed port is still IpInDelivers.
// * App sockets (ns/NAME/sockets) live in the injector process, created in their namespace before the first frame
//   and read from the same select loop as the captures. They stay open until the dump is written: a close would send
//   a FIN or RST and move counters afterwards. An IPv6 wildcard socket also takes IPv4 (net.ipv6.bindv6only=0): its
//   IPv4 peers read as [::ffff:A.B.C.D]:PORT.
// * IPv4 fragments: where conntrack runs, nf_defrag_ipv4 gathers them in front of it (PREROUTING -400); the datagram
//   is forwarded and cut again as the fragments came (ip_do_fragment's frag_list path: offset order, no DF), since
//   IPCB frag_max_size forces ip_fragment. That path writes each outgoing header over the chained skb's own IP header
//   without unsharing it (it checks skb_shared, not skb_cloned); the fragment that completed the datagram is such a
//   chained clone unless it is the first one (inet_frag_reasm_prepare unclones only the head), and the packet socket's
//   clone of it is read after that: its rx capture shows the outgoing header (NATed, TTL 63). Softnet's tap records
//   at receive; the scenarios send the first fragment last where a datagram is forwarded through conntrack.
// * IPv6 fragments: where IPv6 conntrack runs, nf_defrag_ipv6 gathers them the same way (ip6_fragment's frag_list
//   path rewrites the completing fragment's header alike); the scenarios send the first fragment last there too.
// * ipfrag_time runs on the kernel's clock: a pause in the capture (ScenarioCapture.Pause, >= LongGapMs) is kept by
//   the injector, so a queue expires in it in both runs (ICMP 11/1 when its first fragment is in; a conntrack queue
//   only for a datagram addressed to the host).

/// <summary>
/// Loads a scenario folder into real network namespaces, injects a capture's frames and dumps the result in the
/// layout `softnet replay --dump` writes: OUTDIR/&lt;ns&gt;/iptables-save.txt, conntrack.txt, nstat.txt, &lt;dev&gt;.rx.pcap,
/// &lt;dev&gt;.tx.pcap, and sockets.txt where the namespace has a sockets file. Everything is torn down afterwards, also
/// on failure.
/// </summary>
public static class KernelScenario
{
    private static int s_runs;
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Dictionary<string, long>> s_nstatBaseline = new();

    /// <summary>Milliseconds the injector waits for quiet after each frame.</summary>
    public const int GapMs = 3;

    /// <summary>Milliseconds of quiet after the last frame before the dump.</summary>
    public const int SettleMs = 300;

    /// <summary>A pause in the capture's timestamps at least this long is kept by the injector (it waits that long
    /// before the next frame), so kernel timers such as ipfrag_time run as Softnet's replay clock runs them. Shorter
    /// gaps are not kept: the scenarios' captures space frames 1 ms apart and the injector paces itself.</summary>
    public const int LongGapMs = 500;

    /// <summary>Null when the kernel run can work here; otherwise the reason to skip.</summary>
    public static string? Unavailable() => Netns.Unavailable("python3", "sysctl", "iptables-restore", "iptables-save", "conntrack", "ipset", "nstat");

    /// <summary>
    /// Builds <paramref name="scenarioDir"/> in namespaces named &lt;prefix&gt;-&lt;ns&gt;, injects every frame of
    /// <paramref name="capturePath"/> as received on NS:DEV (<paramref name="inject"/> is "NS" or "NS:DEV"; without
    /// DEV the frame's pcapng if_name names the device in NS), then writes the dump to <paramref name="outDir"/>.
    /// With <paramref name="injectCpu"/> the injector runs on that CPU only (taskset: the veth's transmit and the
    /// netif_rx behind it run there) and writes /proc/net/softnet_stat as it was just before the first frame and after
    /// the settling time to OUTDIR/softnet_stat.before and softnet_stat.after; and each namespace counts its IPv4
    /// packets per CPU and per <paramref name="placementFlows"/> entry (<see cref="KernelPlacement"/>), written to
    /// OUTDIR/placement.txt before the dump.
    /// </summary>
    public static void Run(string scenarioDir, string capturePath, string inject, string outDir, int injectCpu = -1,
        IReadOnlyList<string>? placementFlows = null)
    {
        var scenario = ScenarioFolder.Load(scenarioDir);
        string prefix = $"sn{Environment.ProcessId}x{Interlocked.Increment(ref s_runs)}";
        string work = Directory.CreateTempSubdirectory("softnet-kscn-").FullName;
        var created = new List<string>();
        try
        {
            Build(scenario, prefix, work, created);
            // A namespace with IPv6 on sends MLD reports for its groups when its links come up (the robustness
            // retransmissions up to a second later): the run starts once they are over.
            // Those reports (and the kernel's other set-up messages) move its counters: nstat.txt then holds what the
            // run moved, from a baseline taken now.
            if (scenario.Namespaces.Any(ns => Ipv6On(Path.Combine(scenario.Root, "ns", ns, "sysctl.conf"))))
            {
                Thread.Sleep(Ipv6SettleMs);
                foreach (var ns in scenario.Namespaces)
                    s_nstatBaseline[KernelName(prefix, ns)] = Softnet.Telemetry.SnmpMib.ParseNstat(Proc.Check("ip", "netns", "exec", KernelName(prefix, ns), "nstat", "-asz"));
            }
            var (targets, framesFile, pausesMs) = PrepareFrames(scenario, prefix, capturePath, inject, work);
            var placement = injectCpu < 0 ? null
                : KernelPlacement.Install(scenario.Namespaces.Select(n => (n, KernelName(prefix, n))), placementFlows ?? []);
            // The injector keeps its app sockets open until the dump is written: closing a connection sends a FIN or
            // RST, which would move counters after the injection ended.
            InjectAndDump(scenario, prefix, targets, framesFile, outDir, work, pausesMs, injectCpu, placement);
        }
        finally
        {
            foreach (var ns in created) Proc.Run("ip", "netns", "del", ns);
            try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }

    /// <summary>Milliseconds to wait after building a scenario where IPv6 is on before the first frame (MLD reports).</summary>
    public const int Ipv6SettleMs = 3000;

    /// <summary>A namespace keeps IPv6 unless its sysctl.conf sets net.ipv6.conf.all.disable_ipv6 = 1.</summary>
    private static bool Ipv6On(string sysctl)
        => !File.Exists(sysctl) || !ScenarioFolder.ParseSysctl(File.ReadAllText(sysctl)).Any(kv => kv.Key == "net.ipv6.conf.all.disable_ipv6" && kv.Value.Trim() == "1");

    /// <summary>The kernel's name for scenario namespace <paramref name="ns"/> in run <paramref name="prefix"/>.</summary>
    public static string KernelName(string prefix, string ns) => $"{prefix}-{ns}";

    /// <summary>`nstat -asz` text less a baseline's values, line by line (name, value, rate).</summary>
    private static string Subtract(string text, Dictionary<string, long> baseline)
    {
        var sb = new StringBuilder();
        foreach (var line in text.Split('\n'))
        {
            var t = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (t.Length >= 2 && !t[0].StartsWith('#') && long.TryParse(t[1], out long v))
                sb.Append(t[0].PadRight(32)).Append((v - baseline.GetValueOrDefault(t[0])).ToString(System.Globalization.CultureInfo.InvariantCulture).PadRight(16)).Append("   0.0\n");
            else if (line.Length > 0) sb.Append(line).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>An ip.batch text cut into runs of plain batch lines (family null) and single `-6`/`-4` lines (the family
    /// option and the rest of the line).</summary>
    public static IEnumerable<(string? Family, string Text)> SplitFamilyLines(string batch)
    {
        var run = new List<string>();
        foreach (var raw in batch.Split('\n'))
        {
            var t = raw.Trim();
            if (t.StartsWith("-6 ", StringComparison.Ordinal) || t.StartsWith("-4 ", StringComparison.Ordinal))
            {
                if (run.Count > 0) { yield return (null, string.Join('\n', run) + "\n"); run.Clear(); }
                yield return (t[..2], t[3..]);
            }
            else run.Add(raw);
        }
        if (run.Count > 0) yield return (null, string.Join('\n', run) + "\n");
    }

    /// <summary>Rewrites the namespace names in an `ip -batch` text: `netns add|del|exec|set NAME`, and NAME
    /// after a `netns` or `link-netns` option.</summary>
    public static string RewriteNetns(string batch, string prefix)
    {
        var lines = new List<string>();
        foreach (var raw in batch.Split('\n'))
        {
            var tokens = raw.Split([' ', '\t', '\r'], StringSplitOptions.RemoveEmptyEntries);
            if (tokens.Length == 0 || tokens[0].StartsWith('#')) { lines.Add(raw.TrimEnd('\r')); continue; }
            int start = 0;
            if (tokens[0] == "netns" && tokens.Length > 2 && tokens[1] is "add" or "del" or "delete" or "exec" or "set" or "attach")
            {
                tokens[2] = KernelName(prefix, tokens[2]);
                start = 3;
            }
            for (int i = start; i < tokens.Length - 1; i++)
                if (tokens[i] is "netns" or "link-netns" && !int.TryParse(tokens[i + 1], out _))
                    tokens[i + 1] = KernelName(prefix, tokens[i + 1]);
            lines.Add(string.Join(' ', tokens));
        }
        return string.Join('\n', lines);
    }

    /// <summary>Creates the scenario's namespaces (named by <see cref="KernelName"/>), applies sysctl.conf, ip.batch and
    /// iptables.save; every namespace name goes into <paramref name="created"/> first, for the caller to delete.</summary>
    public static void Build(ScenarioFolder s, string prefix, string work, List<string> created)
    {
        string links = Path.Combine(work, "links.batch");
        File.WriteAllText(links, RewriteNetns(s.LinksBatch, prefix));
        // Record the names first: a batch that fails half way has still created some of them.
        foreach (var ns in s.Namespaces) created.Add(KernelName(prefix, ns));
        var (exit, _, err) = Proc.Run("ip", "-batch", links);
        if (exit != 0) throw new InvalidOperationException($"ip -batch links.batch failed: {err.Trim()}");
        foreach (var ns in s.Namespaces)
        {
            string kn = KernelName(prefix, ns);
            string dir = Path.Combine(s.Root, "ns", ns);
            // sysctl first: IPv6 off and redirects off before ip.batch brings links up and creates bridges.
            string sysctl = Path.Combine(dir, "sysctl.conf");
            if (File.Exists(sysctl))
                foreach (var (key, value) in ScenarioFolder.ParseSysctl(File.ReadAllText(sysctl)))
                {
                    var r = Proc.Run("ip", "netns", "exec", kn, "sysctl", "-q", "-w", $"{key}={value}");
                    if (r.Exit != 0) throw new InvalidOperationException($"ns/{ns}/sysctl.conf: {key} = {value}: {r.Stderr.Trim()}");
                }
            string ipBatch = Path.Combine(dir, "ip.batch");
            if (File.Exists(ipBatch))
            {
                // `ip -batch` takes no options: a `-6 ...` / `-4 ...` line runs as its own `ip -n NS -6 ...`, between
                // batches of the lines around it.
                int part = 0;
                foreach (var (family, text) in SplitFamilyLines(RewriteNetns(File.ReadAllText(ipBatch), prefix)))
                {
                    (int Exit, string Stdout, string Stderr) r;
                    if (family == null)
                    {
                        string rewritten = Path.Combine(work, $"{ns}.{part++}.ip.batch");
                        File.WriteAllText(rewritten, text);
                        r = Proc.Run("ip", "-n", kn, "-batch", rewritten);
                    }
                    else r = Proc.Run("ip", new[] { "-n", kn, family }.Concat(text.Split(' ', StringSplitOptions.RemoveEmptyEntries)));
                    if (r.Exit != 0) throw new InvalidOperationException($"ns/{ns}/ip.batch: {r.Stderr.Trim()}");
                }
            }
            string bridgeBatch = Path.Combine(dir, "bridge.batch");
            if (File.Exists(bridgeBatch))
            {
                var r = Proc.Run("ip", "netns", "exec", kn, "bridge", "-batch", bridgeBatch);
                if (r.Exit != 0) throw new InvalidOperationException($"ns/{ns}/bridge.batch: {r.Stderr.Trim()}");
            }
            string ipset = Path.Combine(dir, "ipset.save");
            if (File.Exists(ipset))
            {
                var r = Proc.Run("ip", "netns", "exec", kn, "ipset", "restore", "-f", ipset);
                if (r.Exit != 0) throw new InvalidOperationException($"ns/{ns}/ipset.save: {r.Stderr.Trim()}");
            }
            // sysfs after ip.batch (the devices exist): `echo VALUE > /sys/PATH` in the namespace, whose /sys
            // `ip netns exec` mounts.
            string sysfs = Path.Combine(dir, "sysfs");
            if (File.Exists(sysfs))
                foreach (var (path, value) in ScenarioFolder.ParseSysfs(File.ReadAllText(sysfs)))
                {
                    var r = Proc.Run("ip", "netns", "exec", kn, "sh", "-c", $"echo {value} > /sys/{path}");
                    if (r.Exit != 0) throw new InvalidOperationException($"ns/{ns}/sysfs: {path} = {value}: {r.Stderr.Trim()}");
                }
            string save = Path.Combine(dir, "iptables.save");
            if (File.Exists(save))
            {
                var r = Proc.Run("ip", "netns", "exec", kn, "iptables-restore", save);
                if (r.Exit != 0) throw new InvalidOperationException($"ns/{ns}/iptables.save: {r.Stderr.Trim()}");
            }
            string save6 = Path.Combine(dir, "ip6tables.save");
            if (File.Exists(save6))
            {
                var r = Proc.Run("ip", "netns", "exec", kn, "ip6tables-restore", save6);
                if (r.Exit != 0) throw new InvalidOperationException($"ns/{ns}/ip6tables.save: {r.Stderr.Trim()}");
            }
        }
    }

    /// <summary>The veth peer of NS:DEV, found from the kernel (link_index in the namespace link_netnsid names).</summary>
    public static (string Ns, string Dev) Peer(ScenarioFolder s, string prefix, string ns, string dev)
    {
        string kn = KernelName(prefix, ns);
        using var link = JsonDocument.Parse(Proc.Check("ip", "-n", kn, "-j", "link", "show", "dev", dev));
        var l = link.RootElement[0];
        if (!l.TryGetProperty("link_index", out var peerIndex) || !l.TryGetProperty("link_netnsid", out var nsid))
            throw new InvalidOperationException($"{ns}:{dev} is not a veth with its peer in another namespace: frames are injected from the peer");
        using var ids = JsonDocument.Parse(Proc.Check("ip", "-n", kn, "-j", "netns", "list-id"));
        string? peerNs = ids.RootElement.EnumerateArray()
            .Where(e => e.GetProperty("nsid").GetInt32() == nsid.GetInt32() && e.TryGetProperty("name", out _))
            .Select(e => e.GetProperty("name").GetString()).FirstOrDefault();
        string? scenarioNs = s.Namespaces.FirstOrDefault(n => KernelName(prefix, n) == peerNs)
            ?? throw new InvalidOperationException($"the peer of {ns}:{dev} is in namespace '{peerNs}', not one of the scenario's");
        using var peerLinks = JsonDocument.Parse(Proc.Check("ip", "-n", peerNs!, "-j", "link", "show"));
        var peer = peerLinks.RootElement.EnumerateArray().First(e => e.GetProperty("ifindex").GetInt32() == peerIndex.GetInt32());
        return (scenarioNs, peer.GetProperty("ifname").GetString()!);
    }

    private static (List<(string Ns, string Dev)> Targets, string File, long PausesMs) PrepareFrames(ScenarioFolder s, string prefix, string capturePath,
        string inject, string work)
    {
        int colon = inject.IndexOf(':');
        string ns = colon < 0 ? inject : inject[..colon];
        string? fixedDev = colon < 0 ? null : inject[(colon + 1)..];
        if (!s.Namespaces.Contains(ns)) throw new ArgumentException($"--inject {inject}: no namespace '{ns}' in the scenario");
        var targets = new List<(string, string)>();
        var byDev = new Dictionary<string, int>();
        string file = Path.Combine(work, "frames.bin");
        using var w = new BinaryWriter(File.Create(file));
        using var reader = CaptureReader.Open(capturePath);
        int n = 0;
        long lastNs = long.MinValue;
        long extraMs = 0;
        while (reader.TryRead(out var meta, out var data))
        {
            // A long pause: a wait record (target 0xFFFFFFFF, then the milliseconds).
            if (lastNs != long.MinValue && meta.TimestampNs - lastNs >= LongGapMs * 1_000_000L)
            {
                long ms = (meta.TimestampNs - lastNs) / 1_000_000;
                w.Write(uint.MaxValue);
                w.Write((int)ms);
                extraMs += ms;
            }
            lastNs = meta.TimestampNs;
            string dev = fixedDev ?? reader.Interfaces[meta.InterfaceId].Name
                ?? throw new ArgumentException($"frame {n}: its interface has no if_name; use --inject {ns}:DEV");
            if (!byDev.TryGetValue(dev, out int t))
            {
                t = targets.Count;
                // NS:DEV names a device of another namespace (as Softnet's scenario replay reads such an if_name).
                int c = dev.IndexOf(':');
                targets.Add(c < 0 ? Peer(s, prefix, ns, dev) : Peer(s, prefix, dev[..c], dev[(c + 1)..]));
                byDev[dev] = t;
            }
            w.Write(t);
            w.Write(data.Length);
            w.Write(data);
            n++;
        }
        return (targets, file, extraMs);
    }

    private static void InjectAndDump(ScenarioFolder s, string prefix, List<(string Ns, string Dev)> targets, string framesFile, string outDir,
        string work, long pausesMs, int injectCpu, KernelPlacement? placement)
    {
        string script = Path.Combine(work, "inject.py");
        File.WriteAllText(script, InjectorScript);
        string ready = Path.Combine(work, "injected"), done = Path.Combine(work, "dumped");
        var config = new Dictionary<string, object>
        {
            ["namespaces"] = s.Namespaces.ToDictionary(n => n, n => $"/run/netns/{KernelName(prefix, n)}"),
            ["targets"] = targets.Select(t => new[] { t.Ns, t.Dev }).ToArray(),
            ["frames"] = framesFile,
            ["out"] = Path.GetFullPath(outDir),
            ["gapMs"] = GapMs,
            ["settleMs"] = SettleMs,
            ["sockets"] = s.Namespaces.Where(n => s.Sockets(n).Count > 0).ToDictionary(n => n, n => s.Sockets(n).Select(x => new Dictionary<string, object?>
            {
                ["line"] = x.Line, ["tcp"] = x.Tcp, ["addr"] = x.Address, ["v6"] = x.V6, ["port"] = x.Port, ["rcvbuf"] = x.RcvBuf,
            }).ToArray()),
            ["ready"] = ready,
            ["done"] = done,
            ["cpu"] = injectCpu,
        };
        string cfg = Path.Combine(work, "inject.json");
        File.WriteAllText(cfg, JsonSerializer.Serialize(config));
        Directory.CreateDirectory(outDir);
        long frames = new FileInfo(framesFile).Length / 60 + 1;
        int timeoutMs = (int)Math.Min(600_000, 30_000 + frames * (GapMs + 20) + pausesMs);
        var psi = new System.Diagnostics.ProcessStartInfo("python3") { RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(script);
        psi.ArgumentList.Add(cfg);
        using var p = System.Diagnostics.Process.Start(psi) ?? throw new InvalidOperationException("cannot start python3");
        var err = p.StandardError.ReadToEndAsync();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            // The injector writes its captures and sockets.txt, then says so and waits for the dump.
            while (!File.Exists(ready) && !p.HasExited)
            {
                if (clock.ElapsedMilliseconds > timeoutMs) throw new TimeoutException($"the injector did not finish in {timeoutMs} ms");
                Thread.Sleep(20);
            }
            if (!File.Exists(ready)) throw new InvalidOperationException($"injector failed ({p.ExitCode}): {err.Result.Trim()}");
            // The placement counters are read and taken out first: the dump's iptables-save shows the scenario's rules.
            placement?.Collect(outDir);
            Dump(s, prefix, outDir);
        }
        finally
        {
            File.WriteAllText(done, "");
            if (!p.WaitForExit(30_000)) { p.Kill(true); p.WaitForExit(); }
        }
        if (p.ExitCode != 0) throw new InvalidOperationException($"injector failed ({p.ExitCode}): {err.Result.Trim()}");
    }

    private static void Dump(ScenarioFolder s, string prefix, string outDir)
    {
        foreach (var ns in s.Namespaces)
        {
            string kn = KernelName(prefix, ns);
            string dir = Path.Combine(outDir, ns);
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, "iptables-save.txt"), Proc.Check("ip", "netns", "exec", kn, "iptables-save", "-c"));
            var ct = Proc.Run("ip", "netns", "exec", kn, "conntrack", "-L");
            if (ct.Exit != 0) throw new InvalidOperationException($"[{ns}] conntrack -L exited {ct.Exit}: {ct.Stderr.Trim()}");
            File.WriteAllText(Path.Combine(dir, "conntrack.txt"), ct.Stdout);
            // IPv6: `ip6tables-save -c` and `conntrack -L -f ipv6`, where the namespace has an ip6tables ruleset.
            if (File.Exists(Path.Combine(s.Root, "ns", ns, "ip6tables.save")))
            {
                File.WriteAllText(Path.Combine(dir, "ip6tables-save.txt"), Proc.Check("ip", "netns", "exec", kn, "ip6tables-save", "-c"));
                var ct6 = Proc.Run("ip", "netns", "exec", kn, "conntrack", "-L", "-f", "ipv6");
                if (ct6.Exit != 0) throw new InvalidOperationException($"[{ns}] conntrack -L -f ipv6 exited {ct6.Exit}: {ct6.Stderr.Trim()}");
                File.WriteAllText(Path.Combine(dir, "conntrack6.txt"), ct6.Stdout);
            }
            // The SNMP and extended counters as absolute values; -s leaves nstat's history file alone.
            var nstat = Proc.Run("ip", "netns", "exec", kn, "nstat", "-asz");
            if (nstat.Exit != 0) throw new InvalidOperationException($"[{ns}] nstat -asz exited {nstat.Exit}: {nstat.Stderr.Trim()}");
            File.WriteAllText(Path.Combine(dir, "nstat.txt"), s_nstatBaseline.TryRemove(kn, out var baseline) ? Subtract(nstat.Stdout, baseline) : nstat.Stdout);
            // The sets (`ipset save`, only where the namespace has some) and each -m recent list (/proc/net/xt_recent).
            var sets = Proc.Run("ip", "netns", "exec", kn, "ipset", "save");
            if (sets.Exit == 0 && sets.Stdout.Length > 0) File.WriteAllText(Path.Combine(dir, "ipset.save"), sets.Stdout);
            var lists = Proc.Run("ip", "netns", "exec", kn, "sh", "-c", "cd /proc/net/xt_recent 2>/dev/null && for f in *; do [ -f \"$f\" ] && printf '%s\\0' \"$f\" && cat \"$f\" && printf '\\0'; done");
            var parts = lists.Stdout.Split('\0');
            for (int i = 0; i + 1 < parts.Length; i += 2)
            {
                Directory.CreateDirectory(Path.Combine(dir, "xt_recent"));
                File.WriteAllText(Path.Combine(dir, "xt_recent", parts[i]), parts[i + 1]);
            }
        }
    }

    /// <summary>
    /// Captures and injects in one process: opens an ETH_P_ALL socket in every namespace (setns, socket, the
    /// socket stays there), a send socket on every target device, sends each frame and reads until quiet for
    /// gapMs, then writes one pcap per namespace, device and direction.
    /// </summary>
    internal const string InjectorScript = """
import ctypes, errno, hashlib, json, os, select, socket, struct, sys, time
cfg = json.load(open(sys.argv[1]))
if cfg.get('cpu', -1) >= 0:
    os.sched_setaffinity(0, {cfg['cpu']})
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
def enter(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), 'setns ' + path)
    finally:
        os.close(fd)
home = os.open('/proc/self/ns/net', os.O_RDONLY)
caps = []
for ns, path in cfg['namespaces'].items():
    enter(path)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
    devs = [n for _, n in socket.if_nameindex() if n != 'lo']
    caps.append((ns, s, devs))
# App sockets (ns/NAME/sockets): created in their namespace before anything is injected, read from the select loop.
apps = []   # per socket line: [ns, line, kind, sock, records]
conns = {}  # accepted socket -> [app, peer, byte count, sha256, end]
def peer(addr, v6):
    return '[%s]:%d' % (addr[0], addr[1]) if v6 else '%s:%d' % (addr[0], addr[1])
for ns, specs in cfg.get('sockets', {}).items():
    enter(cfg['namespaces'][ns])
    for sp in specs:
        fam = socket.AF_INET6 if sp['v6'] else socket.AF_INET
        a = socket.socket(fam, socket.SOCK_STREAM if sp['tcp'] else socket.SOCK_DGRAM)
        if sp['rcvbuf']:
            a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sp['rcvbuf'])
        a.bind((sp['addr'], sp['port']))
        if sp['tcp']:
            a.listen(128)
        a.setblocking(False)
        apps.append([ns, sp['line'], 'tcp' if sp['tcp'] else 'udp', a, [], sp['v6']])
tx = []
for ns, dev in cfg['targets']:
    enter(cfg['namespaces'][ns])
    t = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    t.bind((dev, 0))
    tx.append(t)
if libc.setns(home, CLONE_NEWNET) != 0:
    raise OSError(ctypes.get_errno(), 'setns back')
frames = {}
def take(ns, s):
    while True:
        try:
            f, addr = s.recvfrom(1 << 18, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        if addr[0] == 'lo':
            continue
        d = 'tx' if addr[2] == 4 else 'rx'  # PACKET_OUTGOING
        frames.setdefault((ns, addr[0], d), []).append((time.time(), f))
def serve(app):
    ns, line, kind, a, records, v6 = app
    while True:
        try:
            if kind == 'udp':
                data, addr = a.recvfrom(1 << 17)
                records.append('  datagram %s len %d sha256 %s' % (peer(addr, v6), len(data), hashlib.sha256(data).hexdigest()[:16]))
            else:
                c, addr = a.accept()
                c.setblocking(False)
                conn = [app, peer(addr, v6), 0, hashlib.sha256(), 'open']
                records.append(conn)
                conns[c] = conn
        except BlockingIOError:
            return
def read_conn(c):
    conn = conns[c]
    while True:
        try:
            data = c.recv(1 << 17)
        except BlockingIOError:
            return
        except ConnectionResetError:
            conn[4] = 'rst'
        else:
            if data:
                conn[2] += len(data)
                conn[3].update(data)
                continue
            conn[4] = 'fin'
        # EOF: the reader closes its side (the FIN); a reset connection is gone already.
        del conns[c]
        c.close()
        return
def drain(wait):
    socks = [c[1] for c in caps]
    while True:
        r, _, _ = select.select(socks + [x[3] for x in apps] + list(conns), [], [], wait)
        if not r:
            return
        for ns, s, _ in caps:
            if s in r:
                take(ns, s)
        for app in apps:
            if app[3] in r:
                serve(app)
        for c in [c for c in r if c in conns]:
            read_conn(c)
drain(0.05)
def softnet_stat(name):
    if cfg.get('cpu', -1) >= 0:
        with open('/proc/net/softnet_stat') as f, open(os.path.join(cfg['out'], name), 'w') as w:
            w.write(f.read())
softnet_stat('softnet_stat.before')
data = open(cfg['frames'], 'rb').read()
off = 0
while off < len(data):
    target, n = struct.unpack_from('<II', data, off); off += 8
    if target == 0xffffffff:  # a long pause in the capture: n milliseconds
        drain(n / 1000.0)
        continue
    tx[target].send(data[off:off + n]); off += n
    drain(cfg['gapMs'] / 1000.0)
drain(cfg['settleMs'] / 1000.0)
softnet_stat('softnet_stat.after')
for ns, s, devs in caps:
    os.makedirs(os.path.join(cfg['out'], ns), exist_ok=True)
    for dev in set(devs) | {k[1] for k in frames if k[0] == ns}:
        for d in ('rx', 'tx'):
            with open(os.path.join(cfg['out'], ns, dev + '.' + d + '.pcap'), 'wb') as w:
                w.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
                for ts, f in frames.get((ns, dev, d), []):
                    w.write(struct.pack('<IIII', int(ts), int((ts % 1) * 1e6), len(f), len(f)) + f)
for ns in cfg.get('sockets', {}):
    with open(os.path.join(cfg['out'], ns, 'sockets.txt'), 'w') as w:
        for app in apps:
            if app[0] != ns:
                continue
            w.write(app[1] + '\n')
            for r in app[4]:
                if isinstance(r, str):
                    w.write(r + '\n')
                else:
                    w.write('  connection %s bytes %d sha256 %s end %s\n' % (r[1], r[2], r[3].hexdigest()[:16], r[4]))
# Sockets stay open (no FIN or RST from a close) until the harness has dumped the namespaces.
open(cfg['ready'], 'w').close()
deadline = time.time() + 600
while not os.path.exists(cfg['done']) and time.time() < deadline:
    time.sleep(0.02)
""";
}

/// <summary>A scenario folder: links.batch, then ns/&lt;name&gt;/ip.batch, iptables.save, ip6tables.save, sysctl.conf, ipset.save, sockets.</summary>
public sealed record ScenarioFolder(string Root, string LinksBatch, IReadOnlyList<string> Namespaces)
{
    /// <summary>Reads links.batch; the namespaces are those it adds (`netns add NAME`), in order.</summary>
    public static ScenarioFolder Load(string root)
    {
        string links = Path.Combine(root, "links.batch");
        if (!File.Exists(links)) throw new FileNotFoundException($"scenario {root}: no links.batch", links);
        string text = File.ReadAllText(links);
        var names = new List<string>();
        foreach (var line in text.Split('\n'))
        {
            var t = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (t.Length >= 3 && t[0] == "netns" && t[1] == "add") names.Add(t[2]);
        }
        if (names.Count == 0) throw new InvalidDataException($"scenario {root}: links.batch adds no namespace");
        return new ScenarioFolder(Path.GetFullPath(root), text, names);
    }

    private readonly Dictionary<string, List<SocketSpec>> _sockets = [];

    /// <summary>ns/&lt;name&gt;/sockets parsed (empty when the namespace has none): the app sockets the harness opens
    /// there before injecting.</summary>
    public IReadOnlyList<SocketSpec> Sockets(string ns)
    {
        if (_sockets.TryGetValue(ns, out var list)) return list;
        string path = Path.Combine(Root, "ns", ns, "sockets");
        list = File.Exists(path) ? SocketSpec.ParseFile(File.ReadAllText(path), $"ns/{ns}/sockets") : [];
        _sockets[ns] = list;
        return list;
    }

    /// <summary>`key = value` lines; '#' and ';' start comments; keys may use '/' for '.'.</summary>
    /// <summary>ns/NAME/sysfs lines: (path under /sys, value); '#' comments, a leading /sys/ dropped.</summary>
    public static IEnumerable<(string Path, string Value)> ParseSysfs(string text)
    {
        foreach (var raw in text.Split('\n'))
        {
            int hash = raw.IndexOf('#');
            string line = (hash >= 0 ? raw[..hash] : raw).Trim();
            if (line.Length == 0) continue;
            int eq = line.IndexOf('=');
            if (eq < 0) throw new InvalidDataException($"sysfs: expected PATH = VALUE: '{line}'");
            string path = line[..eq].Trim();
            if (path.StartsWith("/sys/", StringComparison.Ordinal)) path = path[5..];
            yield return (path, line[(eq + 1)..].Trim());
        }
    }

    public static IEnumerable<(string Key, string Value)> ParseSysctl(string text)
    {
        foreach (var raw in text.Split('\n'))
        {
            string line = raw.Trim();
            if (line.Length == 0 || line[0] is '#' or ';') continue;
            int eq = line.IndexOf('=');
            if (eq <= 0) throw new InvalidDataException($"sysctl.conf: not key = value: '{line}'");
            yield return (line[..eq].Trim().TrimStart('-').Replace('/', '.'), line[(eq + 1)..].Trim());
        }
    }
}
