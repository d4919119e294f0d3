using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Softnet.Netfilter;
using Softnet.Packets;

namespace Softnet.Bench;

/// <summary>
/// `bench netfilter`: packets/s per core through conntrack + NAT + filter (PREROUTING, FORWARD or INPUT,
/// POSTROUTING) for the Docker host ruleset and generated kube-proxy rulesets of 100, 1,000 and 10,000
/// services, Softnet against the kernel on the same frames in the same run. The kernel's cost is the softirq
/// CPU time per packet (/proc/stat, all CPUs) while an AF_PACKET sender injects the frames over veth into a
/// namespace that holds the ruleset and forwards them back out over veth; an empty-ruleset run on the same
/// frames shows the stack's own share (veth receive, routing, forwarding).
/// </summary>
public static class NetfilterBench
{
    private static readonly string[] Scenarios = { "docker", "kube_100", "kube_1000", "kube_10000" };

    // Interfaces of the forwarding namespace (and the order of the sender's sockets).
    private static readonly string[] Devices = { "eth0", "docker0", "cni0" };
    private static readonly string[] Peers = { "sntx0", "sntx1", "sntx2" };
    private static byte[] DevMac(int i) => new byte[] { 0x02, 0x5f, 0, 0, 0, (byte)(0x10 + i) };
    private static byte[] PeerMac(int i) => new byte[] { 0x02, 0x5f, 0, 0, 1, (byte)(0x10 + i) };
    private const string GatewayMac = "02:5f:00:00:02:01";

    private const int Flows = 2048, DataSegments = 3, Batch = 64;

    /// <summary>The Docker host ruleset of tests/Softnet.Tests/Netfilter/Data/docker-host.rules (without counters).</summary>
    private const string DockerRules = """
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        :DOCKER - [0:0]
        -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
        -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
        -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
        -A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE
        -A DOCKER -i docker0 -j RETURN
        -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
        COMMIT
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        :DOCKER - [0:0]
        :DOCKER-ISOLATION-STAGE-1 - [0:0]
        :DOCKER-ISOLATION-STAGE-2 - [0:0]
        :DOCKER-USER - [0:0]
        -A FORWARD -j DOCKER-USER
        -A FORWARD -j DOCKER-ISOLATION-STAGE-1
        -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -o docker0 -j DOCKER
        -A FORWARD -i docker0 ! -o docker0 -j ACCEPT
        -A FORWARD -i docker0 -o docker0 -j ACCEPT
        -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
        -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
        -A DOCKER-ISOLATION-STAGE-1 -j RETURN
        -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
        -A DOCKER-ISOLATION-STAGE-2 -j RETURN
        -A DOCKER-USER -j RETURN
        COMMIT

        """;

    /// <summary>One frame as injected: Ethernet bytes and the index of the device it arrives on.</summary>
    private readonly record struct Frame(byte[] Eth, int Dev);

    private sealed record Scenario(string Name, string Rules, List<Frame> Frames, string Description);

    public static int Run(BenchArgs args)
    {
        var scenarios = new List<Scenario> { Docker() };
        foreach (int n in new[] { 100, 1000, 10_000 }) scenarios.Add(Kube(n));
        double seconds = Math.Min(args.Seconds, 3);

        var softnet = new Dictionary<string, double>();
        foreach (var s in scenarios)
        {
            var (pps, accepted, visited) = MeasureSoftnet(s, seconds);
            softnet[s.Name] = pps;
            Console.WriteLine($"softnet {s.Name,-11} {pps / 1e6,7:F3} Mpps/core  accepted {accepted:P1}  rules visited/packet {visited:F2}  ({s.Description})");
        }

        string? why = KernelUnavailable();
        var kernel = new Dictionary<string, double?>();
        var empty = new Dictionary<string, double?>();
        if (why is null)
        {
            foreach (var s in scenarios)
            {
                var e = MeasureKernel(s, rules: null, seconds);
                var k = MeasureKernel(s, s.Rules, seconds);
                empty[s.Name] = e?.Pps;
                kernel[s.Name] = k?.Pps;
                Console.WriteLine($"kernel  {s.Name,-11} {Fmt(k?.Pps)} Mpps/core (forwarded {k?.Forwarded:P1})  empty ruleset {Fmt(e?.Pps)} Mpps/core (forwarded {e?.Forwarded:P1})");
            }
        }
        else Console.WriteLine($"kernel: not measured: {why}");

        Console.WriteLine();
        Console.WriteLine($"{"ruleset",-12}{"softnet pps/core",18}{"kernel pps/core",18}{"kernel empty",16}{"softnet/kernel",16}");
        foreach (var s in scenarios)
        {
            kernel.TryGetValue(s.Name, out var k);
            empty.TryGetValue(s.Name, out var e);
            string ratio = k is > 0 ? (softnet[s.Name] / k.Value).ToString("F2", CultureInfo.InvariantCulture) : "-";
            Console.WriteLine($"{s.Name,-12}{softnet[s.Name],18:N0}{(k is null ? "-" : k.Value.ToString("N0", CultureInfo.InvariantCulture)),18}{(e is null ? "-" : e.Value.ToString("N0", CultureInfo.InvariantCulture)),16}{ratio,16}");
        }
        Console.WriteLine($"kube_10000 / kube_100 (softnet): {softnet["kube_10000"] / softnet["kube_100"]:F2}");

        if (args.Json is not null)
        {
            using var f = File.Create(args.Json);
            using var w = new Utf8JsonWriter(f, new JsonWriterOptions { Indented = true });
            w.WriteStartObject();
            w.WriteStartObject("softnet_pps_per_core");
            foreach (var n in Scenarios) w.WriteNumber(n, Math.Round(softnet[n]));
            w.WriteEndObject();
            WriteNullable(w, "kernel_pps_per_core", kernel);
            WriteNullable(w, "kernel_pps_per_core_empty_ruleset", empty);
            if (why is not null) w.WriteString("kernel_unavailable", why);
            w.WriteString("kernel_method", "softirq time from /proc/stat (summed over CPUs, idle rate subtracted) while a python3 AF_PACKET sender injects the frames over veth into a netns holding the ruleset that forwards them out over veth; packets = rx_packets of the receiving devices");
            w.WriteNumber("frames_per_pass", scenarios[0].Frames.Count);
            w.WriteString("traffic", $"{Flows} TCP flows per ruleset, each SYN, SYN-ACK, ACK, {DataSegments} x (data, reply ACK), FIN, FIN, ACK; repeated passes reopen from TIME_WAIT");
            w.WriteEndObject();
        }
        return 0;
    }

    private static string Fmt(double? pps) => pps is null ? "   -   " : (pps.Value / 1e6).ToString("F3", CultureInfo.InvariantCulture).PadLeft(7);

    private static void WriteNullable(Utf8JsonWriter w, string name, Dictionary<string, double?> values)
    {
        w.WriteStartObject(name);
        foreach (var n in Scenarios)
        {
            if (values.TryGetValue(n, out var v) && v is not null) w.WriteNumber(n, Math.Round(v.Value));
            else w.WriteNull(n);
        }
        w.WriteEndObject();
    }

    // ---------------------------------------------------------------- traffic

    /// <summary>Docker host: half the flows come from outside to the published port 8080 (DNAT to the container),
    /// half leave the container for the outside (MASQUERADE to eth0's address).</summary>
    private static Scenario Docker()
    {
        uint host = Ipv4.Parse("192.168.100.1"), container = Ipv4.Parse("172.17.0.2");
        var flows = new List<FlowSpec>();
        for (int k = 0; k < Flows; k++)
        {
            uint remote = Ipv4.Parse("198.51.100.0") + (uint)(1 + k % 250);
            ushort port = (ushort)(20000 + k);
            flows.Add(k % 2 == 0
                ? new FlowSpec(remote, port, host, 8080, container, 80, ClientDev: 0, ServerDev: 1)
                : new FlowSpec(container, port, remote, 443, remote, 443, ClientDev: 1, ServerDev: 0, ReplyDst: host));
        }
        return new Scenario("docker", DockerRules, BuildFrames(flows), "Docker host: published port and masqueraded egress");
    }

    /// <summary>kube-proxy with n services: client pods on another node (eth0) open connections to cluster IPs of
    /// single-endpoint TCP services spread over the whole KUBE-SERVICES chain; endpoints answer on cni0.</summary>
    private static Scenario Kube(int services)
    {
        var k = KubeProxyRules.Generate(new KubeProxyOptions { Services = services });
        var targets = k.Services.Where(s => s.Protocol == 6 && s.Endpoints.Count == 1).ToList();
        var rng = new Random(services);
        var flows = new List<FlowSpec>();
        for (int i = 0; i < Flows; i++)
        {
            var s = targets[rng.Next(targets.Count)];
            uint client = Ipv4.Parse("10.244.128.0") + (uint)((i / 250) << 8) + (uint)(i % 250 + 2);
            var (ep, epPort) = s.Endpoints[0];
            flows.Add(new FlowSpec(client, (ushort)(30000 + i), s.ClusterIp, s.Port, ep, epPort, ClientDev: 0, ServerDev: 2));
        }
        return new Scenario($"kube_{services}", k.Text, BuildFrames(flows), $"{services} services, {k.RuleCount} rules");
    }

    /// <summary>A TCP flow: the client's view (to Dst:DstPort) and the server's real address the replies come from.
    /// ReplyDst, when set, is where replies are addressed (the masquerade address instead of the client).</summary>
    private sealed record FlowSpec(uint Client, ushort ClientPort, uint Dst, ushort DstPort, uint Server, ushort ServerPort,
        int ClientDev, int ServerDev, uint ReplyDst = 0);

    /// <summary>Frames of all flows, interleaved a batch of flows at a time, step by step through each connection.</summary>
    private static List<Frame> BuildFrames(List<FlowSpec> flows)
    {
        var frames = new List<Frame>();
        int steps = 6 + 2 * DataSegments;
        for (int b = 0; b < flows.Count; b += Batch)
            for (int step = 0; step < steps; step++)
                for (int k = b; k < Math.Min(flows.Count, b + Batch); k++)
                    frames.Add(FlowFrame(flows[k], k, step));
        return frames;
    }

    private static Frame FlowFrame(FlowSpec f, int k, int step)
    {
        const byte Fin = 0x01, Syn = 0x02, Psh = 0x08, Ack = 0x10;
        const int Payload = 100;
        uint cIsn = 1000u + (uint)k * 7919u, sIsn = 500_000u + (uint)k * 104_729u;
        int dataEnd = 3 + 2 * DataSegments;
        uint cSeqAfterData = cIsn + 1 + (uint)(DataSegments * Payload);
        uint replyDst = f.ReplyDst != 0 ? f.ReplyDst : f.Client;
        Frame Orig(byte flags, uint seq, uint ack, int payload) => new(Tcp(f.ClientDev, f.Client, f.ClientPort, f.Dst, f.DstPort, flags, seq, ack, payload), f.ClientDev);
        Frame Reply(byte flags, uint seq, uint ack) => new(Tcp(f.ServerDev, f.Server, f.ServerPort, replyDst, f.ClientPort, flags, seq, ack, 0), f.ServerDev);
        if (step == 0) return Orig(Syn, cIsn, 0, 0);
        if (step == 1) return Reply(Syn | Ack, sIsn, cIsn + 1);
        if (step == 2) return Orig(Ack, cIsn + 1, sIsn + 1, 0);
        if (step < dataEnd)
        {
            int d = (step - 3) / 2;
            uint seq = cIsn + 1 + (uint)(d * Payload);
            return (step - 3) % 2 == 0 ? Orig(Psh | Ack, seq, sIsn + 1, Payload) : Reply(Ack, sIsn + 1, seq + Payload);
        }
        if (step == dataEnd) return Orig(Fin | Ack, cSeqAfterData, sIsn + 1, 0);
        if (step == dataEnd + 1) return Reply(Fin | Ack, sIsn + 1, cSeqAfterData + 1);
        return Orig(Ack, cSeqAfterData + 1, sIsn + 2, 0);
    }

    private static byte[] Tcp(int dev, uint src, ushort sport, uint dst, ushort dport, byte flags, uint seq, uint ack, int payload)
    {
        var b = new byte[14 + 20 + 20 + payload];
        DevMac(dev).CopyTo(b, 0);
        PeerMac(dev).CopyTo(b, 6);
        b[12] = 0x08;
        var ip = b.AsSpan(14);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(40 + payload));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)(seq ^ sport));
        ip[6] = 0x40;
        ip[8] = 64;
        ip[9] = 6;
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], src);
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], dst);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Compute(ip[..20]));
        var t = ip[20..];
        BinaryPrimitives.WriteUInt16BigEndian(t, sport);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], dport);
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(t[8..], ack);
        t[12] = 5 << 4;
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], 65535);
        for (int i = 0; i < payload; i++) t[20 + i] = (byte)('0' + i % 10);
        BinaryPrimitives.WriteUInt16BigEndian(t[16..], Checksum.Compute(t, Checksum.PseudoHeaderV4(ip.Slice(12, 4), ip.Slice(16, 4), 6, t.Length)));
        return b;
    }

    // ---------------------------------------------------------------- Softnet

    private static readonly uint Cni0Net = Ipv4.Parse("10.244.0.0"), ServiceNet = Ipv4.Parse("10.96.0.0"), DockerNet = Ipv4.Parse("172.17.0.0");

    /// <summary>The forwarding namespace's routes, as the kernel side sets them up.</summary>
    private static int Route(uint dst)
        => (dst & 0xFFFF0000) == DockerNet ? 1
         : (dst & 0xFFFF8000) == Cni0Net || (dst & 0xFFF00000) == ServiceNet ? 2
         : 0;

    private static (double Pps, double Accepted, double Visited) MeasureSoftnet(Scenario s, double seconds)
    {
        var t = IptablesSaveParser.Parse(s.Rules, s.Name);
        t.Host = new SimpleHost().Add("eth0", "192.168.100.1/24").Add("docker0", "172.17.0.1/16").Add("cni0", "10.255.2.1/30");
        var frames = s.Frames.ToArray();
        var scratch = new byte[2048];
        long now = 0, accepted = 0, packets = 0;

        long Pass()
        {
            long ok = 0;
            foreach (var f in frames)
            {
                // NAT rewrites the datagram in place: work on a copy, as the kernel works on its skb.
                int len = f.Eth.Length - 14;
                f.Eth.AsSpan(14).CopyTo(scratch);
                var ip = scratch.AsSpan(0, len);
                if (!PacketContext.FromIpv4(ip, ip.Length, out var ctx, out _)) continue;
                ctx.InInterface = Devices[f.Dev];
                ctx.TimestampNs = now += 1000;
                if (t.Hook(HookPoint.PreRouting, ref ctx, ip) == Verdict.Drop) continue;
                if (t.Host.AddressType(ctx.Dst, null) == RouteType.Local)
                {
                    if (t.Hook(HookPoint.LocalIn, ref ctx, ip) == Verdict.Accept) ok++;
                    continue;
                }
                ctx.OutInterface = Devices[Route(ctx.Dst)];
                if (t.Hook(HookPoint.Forward, ref ctx, ip) == Verdict.Drop) continue;
                if (t.Hook(HookPoint.PostRouting, ref ctx, ip) == Verdict.Accept) ok++;
            }
            return ok;
        }

        var warm = Stopwatch.StartNew();
        while (warm.Elapsed.TotalSeconds < 0.5) Pass();
        long visited0 = t.RulesVisited;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            accepted += Pass();
            packets += frames.Length;
        }
        sw.Stop();
        return (packets / sw.Elapsed.TotalSeconds, (double)accepted / packets, (double)(t.RulesVisited - visited0) / packets);
    }

    // ---------------------------------------------------------------- kernel

    private static string? KernelUnavailable()
    {
        if (!OperatingSystem.IsLinux()) return "not Linux";
        if (Environment.UserName != "root") return "needs root for network namespaces";
        foreach (var tool in new[] { "ip", "iptables-restore", "python3" })
            if (Sh($"command -v {tool}").Exit != 0) return $"{tool} not found";
        string ns = $"snbprobe{Environment.ProcessId}";
        var probe = Sh($"ip netns add {ns} && ip netns del {ns}");
        return probe.Exit == 0 ? null : "cannot create network namespaces: " + probe.Err.Trim();
    }

    private const string Sender = """
        import socket, struct, sys, time
        path, seconds = sys.argv[1], float(sys.argv[2])
        devs = sys.argv[3:]
        data = open(path, 'rb').read()
        socks = []
        for d in devs:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            s.bind((d, 0))
            socks.append(s.send)
        frames = []
        i = 0
        while i < len(data):
            k = data[i]; n = struct.unpack_from('<H', data, i + 1)[0]
            frames.append((socks[k], data[i + 3:i + 3 + n])); i += 3 + n
        sent = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for send, f in frames:
                send(f)
            sent += len(frames)
        print(sent)
        """;

    /// <summary>Forward-namespace softirq cost: packets received / softirq seconds while injecting.</summary>
    private static (double Pps, double Forwarded)? MeasureKernel(Scenario s, string? rules, double seconds)
    {
        string id = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        string tx = "sntx" + id, fw = "snfw" + id;
        string dir = Directory.CreateTempSubdirectory("softnet-nfbench").FullName;
        try
        {
            Setup(tx, fw);
            if (rules is not null)
            {
                File.WriteAllText(Path.Combine(dir, "rules"), rules);
                var r = Sh($"ip netns exec {fw} iptables-restore {dir}/rules");
                if (r.Exit != 0) { Console.Error.WriteLine($"kernel {s.Name}: iptables-restore failed: {r.Err}"); return null; }
            }
            using (var bin = File.Create(Path.Combine(dir, "frames")))
            {
                foreach (var f in s.Frames)
                {
                    bin.WriteByte((byte)f.Dev);
                    bin.WriteByte((byte)f.Eth.Length);
                    bin.WriteByte((byte)(f.Eth.Length >> 8));
                    bin.Write(f.Eth);
                }
            }
            File.WriteAllText(Path.Combine(dir, "send.py"), Sender);
            // Warm-up pass (module loading, conntrack allocation), then the idle softirq rate, then the timed run.
            Sh($"ip netns exec {tx} python3 {dir}/send.py {dir}/frames 0.3 {string.Join(' ', Peers)}");
            var idle0 = SoftirqTicks();
            var idleWatch = Stopwatch.StartNew();
            Thread.Sleep(1000);
            double idleRate = (SoftirqTicks() - idle0) / idleWatch.Elapsed.TotalSeconds;

            long rx0 = Counter(fw, "rx_packets"), tx0 = Counter(fw, "tx_packets");
            long soft0 = SoftirqTicks();
            var sw = Stopwatch.StartNew();
            var send = Sh($"ip netns exec {tx} python3 {dir}/send.py {dir}/frames {seconds.ToString(CultureInfo.InvariantCulture)} {string.Join(' ', Peers)}");
            double elapsed = sw.Elapsed.TotalSeconds;
            long soft = SoftirqTicks() - soft0;
            long rx = Counter(fw, "rx_packets") - rx0, txd = Counter(fw, "tx_packets") - tx0;
            if (send.Exit != 0) { Console.Error.WriteLine($"kernel {s.Name}: sender failed: {send.Err}"); return null; }
            double softSeconds = (soft - idleRate * elapsed) / UserHz;
            if (softSeconds <= 0 || rx == 0) return null;
            return (rx / softSeconds, (double)txd / rx);
        }
        finally
        {
            Sh($"ip netns del {tx}; ip netns del {fw}");
            Directory.Delete(dir, true);
        }
    }

    private const double UserHz = 100;

    /// <summary>tx namespace holds the senders' ends; fw holds eth0/docker0/cni0, the routes and the ruleset.</summary>
    private static void Setup(string tx, string fw)
    {
        var sb = new StringBuilder("set -e\n");
        sb.Append($"ip netns add {tx}\nip netns add {fw}\n");
        for (int i = 0; i < Devices.Length; i++)
        {
            sb.Append($"ip link add {Peers[i]} netns {tx} address {Mac(PeerMac(i))} type veth peer name {Devices[i]} netns {fw} address {Mac(DevMac(i))}\n");
            sb.Append($"ip -n {tx} link set {Peers[i]} up\nip -n {fw} link set {Devices[i]} up\n");
        }
        sb.Append($"""
            ip netns exec {fw} sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.all.send_redirects=0
            for d in eth0 docker0 cni0; do ip netns exec {fw} sysctl -qw net.ipv4.conf.$d.rp_filter=0 net.ipv4.conf.$d.send_redirects=0; done
            ip -n {fw} addr add 192.168.100.1/24 dev eth0
            ip -n {fw} addr add 172.17.0.1/16 dev docker0
            ip -n {fw} addr add 10.255.2.1/30 dev cni0
            ip -n {fw} neigh replace 192.168.100.2 lladdr {GatewayMac} nud permanent dev eth0
            ip -n {fw} neigh replace 172.17.0.2 lladdr {GatewayMac} nud permanent dev docker0
            ip -n {fw} neigh replace 10.255.2.2 lladdr {GatewayMac} nud permanent dev cni0
            ip -n {fw} route add 198.51.100.0/24 via 192.168.100.2 dev eth0
            ip -n {fw} route add 10.244.128.0/17 via 192.168.100.2 dev eth0
            ip -n {fw} route add 10.244.0.0/17 via 10.255.2.2 dev cni0
            ip -n {fw} route add 10.96.0.0/12 via 10.255.2.2 dev cni0

            """);
        var r = Sh(sb.ToString());
        if (r.Exit != 0) throw new InvalidOperationException("netns setup failed: " + r.Err);
    }

    private static string Mac(byte[] m) => string.Join(':', m.Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));

    private static long Counter(string ns, string name)
    {
        long sum = 0;
        foreach (var d in Devices)
        {
            var r = Sh($"ip netns exec {ns} cat /sys/class/net/{d}/statistics/{name}");
            if (r.Exit == 0) sum += long.Parse(r.Out.Trim(), CultureInfo.InvariantCulture);
        }
        return sum;
    }

    /// <summary>Sum of the softirq column of the "cpu" line of /proc/stat, in USER_HZ ticks.</summary>
    private static long SoftirqTicks() => Softnet.Telemetry.HostCpuTicks.Total()[Softnet.Telemetry.HostCpuTicks.Softirq];

    private static (int Exit, string Out, string Err) Sh(string script)
    {
        var psi = new ProcessStartInfo("sh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, o.Result, e.Result);
    }
}
