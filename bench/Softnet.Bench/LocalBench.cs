using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Softnet.KernelTests.Support;
using Softnet.Packets;
using Softnet.Telemetry;
using Softnet.Topology;
using Softnet.Transport;

namespace Softnet.Bench;

/// <summary>
/// `bench local`: local delivery to sockets, the whole path a receiving host runs (capture → port → ring → NAPI → IP
/// input → UDP or TCP receive → the socket's receive queue → the reading application), against the kernel on the same
/// frames in the same run.
/// <para>udp: full-size datagrams (1472 B) from 64 source ports to a bound UDP socket. tcp: 8 connections to a
/// listener, handshake in the setup (the client's SYN carries MSS 1460 and window scale 7), then full-size
/// in-order segments (1460 B) round robin over the connections.</para>
/// <para>Softnet replays the capture pinned to one CPU and times the measured frames (process CPU time; its reader runs
/// in that thread). The kernel builds the same namespaces; a reader process in the server namespace (on the other CPU
/// where there is one) reads the socket; an AF_PACKET sender pinned to the measured CPU injects the frames over veth in
/// chunks, each after the reader has read the previous one (TCP: sequence numbers move on every pass and the ACK field
/// is the kernel's ISN + 1, learnt from its SYN-ACKs in the setup). The kernel's cost per packet is that CPU's softirq
/// time (/proc/stat, idle rate subtracted) plus the reader's system time (/proc/PID/stat), over the packets the server's
/// device received.</para>
/// </summary>
public static class LocalBench
{
    public static readonly string[] CaseNames = ["udp", "tcp"];

    private const string Server = "10.77.0.1", Client = "10.77.0.2", ServerMac = "02:00:0a:4d:00:01", ClientMac = "02:00:0a:4d:00:02";
    private const ushort UdpPort = 6001, TcpPort = 5001;
    private const int UdpPayload = 1472, TcpPayload = 1460, Connections = 8, UdpSources = 64;
    private const int MeasuredFrames = 65536;
    private const int Rounds = 5;
    private const double WarmupSeconds = 3;
    /// <summary>Frames the kernel sender sends before it waits for the reader (TCP: 8 segments per connection, an even
    /// count so the receiver's ACKs follow at once).</summary>
    private const int Chunk = 64;
    private const long SetupStartNs = 1_700_000_000_000_000_000;

    public static int Run(BenchArgs args, bool secondsGiven = false)
    {
        using var run = args.Forwarding("local", CaseNames, secondsGiven, Rounds, WarmupSeconds, "softnet-local-");
        var (names, kernelSeconds, rounds, warmup, work, _) = run;
        string scenario = BuildScenario(work);
        var cases = names.Select(n => Build(n, scenario, work)).ToList();
        int cpu = ScenarioBench.PickCpu();
        string pin = ScenarioBench.PinProcess(cpu) ? $"pinned to CPU {cpu}" : "NOT pinned";
        Console.WriteLine($"softnet: {pin}; warm-up {warmup:0.#} s, then best of {rounds}");
        var softnet = new Dictionary<string, ScenarioBench.SoftnetResult>();
        foreach (var c in cases)
        {
            var r = ScenarioBench.MeasureSoftnet(c, rounds, warmup);
            softnet[c.Name] = r;
            Console.WriteLine($"softnet {c.Name,-4} {r.Pps / 1e6,7:F3} Mpps/core  {r.AllocPerPacket,6:F1} B/packet  taken by the socket {r.Forwarded:P1}");
            if (r.Forwarded < 0.99) Console.Error.WriteLine($"bench local: softnet {c.Name}: only {r.Forwarded:P1} of the measured frames reached the socket");
        }

        string? why = KernelScenario.Unavailable() ?? (Proc.Exists("taskset") ? null : "taskset is not installed");
        var kernel = new Dictionary<string, KernelLocal?>();
        double idle = double.NaN;
        int readerCpu = OtherCpu(cpu);
        if (why is null)
        {
            idle = ScenarioBench.IdleSoftirqRate(cpu);
            foreach (var c in cases)
            {
                KernelLocal? k;
                try { k = MeasureKernel(c, cpu, readerCpu, kernelSeconds, idle); }
                catch (Exception e) when (e is InvalidOperationException or TimeoutException or IOException or JsonException or KeyNotFoundException)
                {
                    Console.Error.WriteLine($"bench local: kernel {c.Name}: {e.Message}");
                    k = null;
                }
                kernel[c.Name] = k;
                if (k is null) continue;
                Console.WriteLine($"kernel  {c.Name,-4} {k.Pps / 1e6,7:F3} Mpps/core  (softirq {k.SoftirqSeconds:F2} s on CPU {cpu} + reader system {k.ReaderSeconds:F2} s on CPU {readerCpu}, " +
                                  $"{k.Received:N0} packets, {k.Passes} passes)  taken by the socket {k.Taken:P1}");
            }
        }
        else Console.Error.WriteLine($"bench local: kernel column not measured: {why}");

        ScenarioBench.PrintTable(cases, softnet, name => kernel.TryGetValue(name, out var k) ? k?.Pps : null, 6);
        if (args.Json is not null) WriteJson(args.Json, cases, softnet, kernel, why, cpu, readerCpu, kernelSeconds, idle, rounds, warmup);
        return 0;
    }

    /// <summary>Another online CPU for the kernel's reader (the measured one where the machine has one CPU).</summary>
    private static int OtherCpu(int cpu)
    {
        var cpus = Softnet.Telemetry.HostCpuTicks.PerCpu();
        for (int c = 0; c < cpus.Length; c++)
            if (c != cpu && cpus[c].Sum() > 0) return c; // an offline CPU's line is missing: zeros
        return cpu;
    }

    private static void WriteJson(string path, List<ScenarioBench.Case> cases, Dictionary<string, ScenarioBench.SoftnetResult> softnet,
        Dictionary<string, KernelLocal?> kernel, string? why, int cpu, int readerCpu, double kernelSeconds, double idle, int rounds, double warmup)
    {
        using var f = File.Create(path);
        using var w = new Utf8JsonWriter(f, new JsonWriterOptions { Indented = true });
        KernelLocal? K(ScenarioBench.Case c) => kernel.TryGetValue(c.Name, out var k) ? k : null;
        void PerCase(string name, Func<ScenarioBench.Case, double?> value, int digits = 0) => ScenarioBench.PerCase(w, cases, name, value, digits);
        w.WriteStartObject();
        ScenarioBench.WriteHeadline(w, cases, softnet, name => kernel.TryGetValue(name, out var k) ? k?.Pps : null);
        PerCase("softnet_taken", c => softnet[c.Name].Forwarded, 4);
        PerCase("kernel_taken", c => K(c)?.Taken, 4);
        PerCase("softnet_pps_wall", c => softnet[c.Name].WallPps);
        PerCase("kernel_packets", c => K(c)?.Received);
        PerCase("kernel_softirq_seconds", c => K(c)?.SoftirqSeconds, 3);
        PerCase("kernel_reader_system_seconds", c => K(c)?.ReaderSeconds, 3);
        w.WriteNumber("kernel_send_seconds_per_case", kernelSeconds);
        if (!double.IsNaN(idle)) w.WriteNumber("kernel_idle_softirq_ticks_per_second", Math.Round(idle, 2));
        if (why is not null) w.WriteString("kernel_unavailable", why);
        w.WriteNumber("cpu", cpu);
        w.WriteNumber("kernel_reader_cpu", readerCpu);
        w.WriteString("softnet_method", $"ScenarioReplay.Run on the capture pinned to CPU {cpu} (the sockets' readers run in the same thread); warm-up {warmup:0.#} s, best of {rounds}; " +
            "pps = measured frames / process CPU time; alloc = allocated bytes of the thread over the measured frames; taken = UdpInDatagrams or TcpInSegs of the measured frames / frames");
        w.WriteString("kernel_method", $"the tcp-host namespaces with a python reader in the server namespace on CPU {readerCpu} (recv_into, 1 MiB buffer for TCP) and an AF_PACKET sender on CPU {cpu} " +
            $"sending chunks of {Chunk} frames, each once the reader has read the previous chunk; pps = rx_packets of the server's eth0 / (softirq time of CPU {cpu} from /proc/stat, " +
            "idle rate subtracted, + the reader's system time from /proc/PID/stat); taken = datagrams or segments the reader's socket took (its bytes read / payload) / rx_packets");
        w.WriteString("traffic", $"udp: {UdpPayload}-byte datagrams from {UdpSources} source ports to {Server}:{UdpPort}; tcp: {Connections} connections to {Server}:{TcpPort}, " +
            $"{TcpPayload}-byte in-order segments round robin (no timestamps), handshake in the setup");
        w.WriteEndObject();
    }

    // ---------------------------------------------------------------- the scenario and the frames

    /// <summary>tcp-host with the server's sockets replaced by a UDP socket and one listener.</summary>
    public static string BuildScenario(string work)
    {
        string src = Path.Combine(ScenarioBench.ScenariosRoot(), "tcp-host"), dir = Path.Combine(work, "local-host");
        ScenarioFiles.Copy(src, dir);
        File.WriteAllText(Path.Combine(dir, "ns", "server", "sockets"), $"udp {Server}:{UdpPort}\ntcp listen {Server}:{TcpPort}\n");
        return dir;
    }

    private static byte[] Eth(byte[] ip) => Frames.Eth(ServerMac, ClientMac, ip);

    /// <summary>SYN options: MSS 1460, NOP, window scale 7.</summary>
    private static readonly byte[] SynOptions = [2, 4, 0x05, 0xB4, 1, 3, 3, 7];

    public static uint ClientIsn(int k) => 0x1000_0000u + (uint)k * 0x0100_0000u;

    public static ScenarioBench.Case Build(string name, string scenario, string work, int frames = MeasuredFrames)
    {
        var setup = new List<ScenarioBench.Frame>();
        var measured = new List<ScenarioBench.Frame>(frames);
        Func<Link.Namespace, long> outcome;
        if (name == "udp")
        {
            // One datagram first, so the setup is not empty (and the socket has been found once).
            setup.Add(new("eth0", Eth(Frames.Udp(Client, 29999, Server, UdpPort, UdpPayload))));
            for (int i = 0; i < frames; i++)
                measured.Add(new("eth0", Eth(Frames.Udp(Client, (ushort)(30000 + i % UdpSources), Server, UdpPort, UdpPayload))));
            outcome = ns => ns.Mib[SnmpCounter.UdpInDatagrams];
        }
        else
        {
            // The capture answers Softnet's SYN-ACKs (TcpSecure, key 0, at each SYN's capture time: setup frame k is
            // at SetupStartNs + k µs, as ScenarioBench.WriteCapture spaces them).
            var serverIsn = new uint[Connections];
            uint server = Ipv4.Parse(Server), client = Ipv4.Parse(Client);
            for (int k = 0; k < Connections; k++)
            {
                setup.Add(new("eth0", Eth(Frames.Tcp(Client, Port(k), Server, TcpPort, TcpFlags.Syn, ClientIsn(k), 0, options: SynOptions))));
                serverIsn[k] = TcpSecure.SeqAndTsOff(0, server, client, TcpPort, Port(k), SetupStartNs + k * 1000L).Isn;
            }
            for (int k = 0; k < Connections; k++)
                setup.Add(new("eth0", Eth(Frames.Tcp(Client, Port(k), Server, TcpPort, TcpFlags.Ack, ClientIsn(k) + 1, serverIsn[k] + 1, window: 502))));
            for (int i = 0; i < frames; i++)
            {
                int k = i % Connections, d = i / Connections;
                measured.Add(new("eth0", Eth(Frames.Tcp(Client, Port(k), Server, TcpPort, TcpFlags.Ack | TcpFlags.Psh,
                    ClientIsn(k) + 1 + (uint)(d * TcpPayload), serverIsn[k] + 1, TcpPayload, window: 502))));
            }
            outcome = ns => ns.Mib[SnmpCounter.TcpInSegs];
        }
        var c = new ScenarioBench.Case
        {
            Name = name,
            ScenarioDir = scenario,
            InjectNs = "server",
            Ingress = "eth0",
            Egress = [],
            Setup = setup,
            Measured = measured,
            Outcome = outcome,
            Description = name == "udp" ? $"{UdpPayload} B datagrams to a UDP socket" : $"{Connections} TCP connections, {TcpPayload} B segments",
        };
        c.CapturePath = Path.Combine(work, name + ".pcapng");
        ScenarioBench.WriteCapture(c, c.CapturePath);
        return c;
    }

    private static ushort Port(int k) => (ushort)(40000 + k);

    // ---------------------------------------------------------------- kernel

    public sealed record KernelLocal(double Pps, long Received, double Taken, double SoftirqSeconds, double ReaderSeconds, int Passes);

    private static int s_runs;

    private static KernelLocal? MeasureKernel(ScenarioBench.Case c, int cpu, int readerCpu, double seconds, double idleTicksPerSecond)
    {
        var folder = ScenarioFolder.Load(c.ScenarioDir);
        string prefix = $"snl{Environment.ProcessId}x{Interlocked.Increment(ref s_runs)}";
        string work = Directory.CreateTempSubdirectory("softnet-local-k-").FullName;
        var created = new List<string>();
        Process? reader = null;
        try
        {
            KernelScenario.Build(folder, prefix, work, created);
            var (clientNs, clientDev) = KernelScenario.Peer(folder, prefix, c.InjectNs, c.Ingress);
            string serverNs = KernelScenario.KernelName(prefix, c.InjectNs);
            string shm = Path.Combine("/dev/shm", prefix + ".count");
            File.WriteAllBytes(shm, new byte[16]);
            File.WriteAllText(Path.Combine(work, "reader.py"), ReaderScript);
            File.WriteAllText(Path.Combine(work, "send.py"), SenderScript);
            void Frames(string file, List<ScenarioBench.Frame> frames)
            {
                using var w = new BinaryWriter(File.Create(Path.Combine(work, file)));
                foreach (var f in frames) { w.Write((ushort)f.Bytes.Length); w.Write(f.Bytes); }
            }
            Frames("setup.bin", c.Setup);
            Frames("measured.bin", c.Measured);
            bool tcp = c.Name == "tcp";
            var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "netns", "exec", serverNs, "taskset", "-c", readerCpu.ToString(CultureInfo.InvariantCulture), "python3",
                         Path.Combine(work, "reader.py"), tcp ? "tcp" : "udp", Server, (tcp ? TcpPort : UdpPort).ToString(CultureInfo.InvariantCulture), shm })
                psi.ArgumentList.Add(a);
            reader = Process.Start(psi) ?? throw new InvalidOperationException("cannot start the reader");
            // The reader says it is listening by writing 1 in the shared page's second word.
            var sw = Stopwatch.StartNew();
            while (BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(shm).AsSpan(8)) == 0)
            {
                if (reader.HasExited) throw new InvalidOperationException($"reader failed: {reader.StandardError.ReadToEnd().Trim()}");
                if (sw.ElapsedMilliseconds > 10_000) throw new TimeoutException("the reader did not start");
                Thread.Sleep(10);
            }
            var cfg = new Dictionary<string, object>
            {
                ["netns"] = $"/run/netns/{KernelScenario.KernelName(prefix, clientNs)}",
                ["dev"] = clientDev,
                ["cpu"] = cpu,
                ["shm"] = shm,
                ["readerPid"] = reader.Id,
                ["tcp"] = tcp,
                ["connections"] = Connections,
                ["payload"] = tcp ? TcpPayload : UdpPayload,
                ["chunk"] = Chunk,
                ["seconds"] = seconds,
                ["work"] = work,
            };
            File.WriteAllText(Path.Combine(work, "cfg.json"), JsonSerializer.Serialize(cfg));
            var before = ScenarioBench.LinkStats(serverNs);
            var run = Proc.Run("taskset", ["-c", cpu.ToString(CultureInfo.InvariantCulture), "python3", Path.Combine(work, "send.py"), Path.Combine(work, "cfg.json")],
                (int)(seconds * 1000) + 120_000);
            if (run.Exit != 0) throw new InvalidOperationException($"sender failed: {run.Stderr.Trim()}");
            var after = ScenarioBench.LinkStats(serverNs);
            using var doc = JsonDocument.Parse(run.Stdout);
            var o = doc.RootElement;
            long ticks = o.GetProperty("ticks").GetInt64();
            double busy = o.GetProperty("seconds").GetDouble();
            double readerSeconds = o.GetProperty("readerTicks").GetInt64() / ScenarioBench.UserHz;
            long sent = o.GetProperty("sent").GetInt64();
            long taken = o.GetProperty("taken").GetInt64();
            long rx = after[c.Ingress].Rx - before[c.Ingress].Rx - o.GetProperty("setupFrames").GetInt64();
            double soft = (ticks - idleTicksPerSecond * busy) / ScenarioBench.UserHz;
            if (rx <= 0 || soft + readerSeconds <= 0)
            {
                Console.Error.WriteLine($"bench local: kernel {c.Name}: nothing measured (rx {rx}, softirq ticks {ticks})");
                return null;
            }
            return new KernelLocal(rx / (soft + readerSeconds), rx, (double)taken / Math.Max(1, sent), soft, readerSeconds, o.GetProperty("passes").GetInt32());
        }
        finally
        {
            if (reader is { HasExited: false }) { reader.Kill(true); reader.WaitForExit(); }
            reader?.Dispose();
            foreach (var ns in created) Proc.Run("ip", "netns", "del", ns);
            try { File.Delete(Path.Combine("/dev/shm", prefix + ".count")); } catch (IOException) { }
            try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// The reading application: a UDP socket or a listener on ADDR:PORT; it reads everything (recv_into) and keeps
    /// its running total (datagrams, or bytes) in the shared page's first word; the second word says it is ready.
    /// </summary>
    private const string ReaderScript = """
import mmap, os, select, socket, struct, sys
kind, addr, port, shm = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
fd = os.open(shm, os.O_RDWR); mem = mmap.mmap(fd, 16)
buf = bytearray(1 << 20); view = memoryview(buf)
if kind == 'udp':
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((addr, port))
    struct.pack_into('<q', mem, 8, 1)
    n = 0
    while True:
        s.recv_into(view, 65536)
        n += 1
        struct.pack_into('<q', mem, 0, n)
else:
    l = socket.socket(socket.AF_INET, socket.SOCK_STREAM); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((addr, port)); l.listen(128)
    struct.pack_into('<q', mem, 8, 1)
    conns = []; total = 0
    while True:
        r, _, _ = select.select([l] + conns, [], [])
        for c in r:
            if c is l:
                a, _ = l.accept(); conns.append(a)
                continue
            k = c.recv_into(view)
            if k == 0:
                conns.remove(c); c.close(); continue
            total += k
            struct.pack_into('<q', mem, 0, total)
""";

    /// <summary>
    /// The AF_PACKET sender, in the client namespace: the setup frames (TCP: SYNs, then each connection's ACK with the
    /// kernel's ISN + 1 read from its SYN-ACK), then the measured frames in chunks, waiting after each until the reader
    /// has taken it, in passes until `seconds` of sending (TCP: each pass moves the sequence numbers on and every frame
    /// gets the kernel's ACK number, checksums adjusted incrementally). Prints the softirq ticks of its CPU and the
    /// reader's system ticks over the passes.
    /// </summary>
    private const string SenderScript = """
import ctypes, json, mmap, os, socket, struct, sys, time
cfg = json.load(open(sys.argv[1]))
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(cfg['netns'], os.O_RDONLY)
if libc.setns(fd, 0x40000000) != 0:
    raise OSError(ctypes.get_errno(), 'setns')
def frames(name):
    data = open(os.path.join(cfg['work'], name), 'rb').read(); out = []; i = 0
    while i < len(data):
        (n,) = struct.unpack_from('<H', data, i); out.append(bytearray(data[i + 2:i + 2 + n])); i += 2 + n
    return out
setup = frames('setup.bin'); measured = frames('measured.bin')
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800)); s.bind((cfg['dev'], 0x0800))
mem = mmap.mmap(os.open(cfg['shm'], os.O_RDWR), 16)
def taken():
    return struct.unpack_from('<q', mem, 0)[0]
def fold(x):
    while x >> 16:
        x = (x & 0xffff) + (x >> 16)
    return x
def adjust(f, off, new):
    # RFC 1624: replace the 32-bit word at off, fixing the TCP checksum at 14+20+16.
    old = struct.unpack_from('!I', f, off)[0]
    c = struct.unpack_from('!H', f, 50)[0]
    x = fold((~c & 0xffff) + (~(old >> 16) & 0xffff) + (~old & 0xffff) + (new >> 16) + (new & 0xffff))
    struct.pack_into('!I', f, off, new); struct.pack_into('!H', f, 50, ~x & 0xffff)
tcp = cfg['tcp']; conns = cfg['connections']; payload = cfg['payload']
if tcp:
    syns = setup[:conns]; acks = setup[conns:]
    isn = {}
    for f in syns:
        s.send(f)
    deadline = time.time() + 5
    while len(isn) < conns and time.time() < deadline:
        s.settimeout(0.5)
        try:
            p = s.recv(2048)
        except socket.timeout:
            continue
        if len(p) >= 54 and p[23] == 6 and (p[47] & 0x12) == 0x12:
            isn[struct.unpack_from('!H', p, 36)[0]] = struct.unpack_from('!I', p, 38)[0]
    if len(isn) < conns:
        raise SystemExit('SYN-ACKs seen for %d of %d connections' % (len(isn), conns))
    for f in acks:
        adjust(f, 42, (isn[struct.unpack_from('!H', f, 34)[0]] + 1) & 0xffffffff); s.send(f)
    for f in measured:
        adjust(f, 42, (isn[struct.unpack_from('!H', f, 34)[0]] + 1) & 0xffffffff)
    time.sleep(0.2)
else:
    for f in setup:
        s.send(f)
s.close()
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0); s.bind((cfg['dev'], 0))
send = s.send
cpu = 'cpu%d ' % cfg['cpu']
def ticks():
    with open('/proc/stat') as f:
        for line in f:
            if line.startswith(cpu):
                return int(line.split()[7])
def reader_ticks():
    with open('/proc/%d/stat' % cfg['readerPid']) as f:
        return int(f.read().rsplit(')', 1)[1].split()[12])
chunk = cfg['chunk']; seconds = cfg['seconds']
per_pass = len(measured) // conns * payload
unit = payload if tcp else 1
sent = 0; tick_sum = 0; reader_sum = 0; busy = 0.0; passes = 0
base = taken()
while busy < seconds:
    if passes > 0 and tcp:
        for f in measured:
            adjust(f, 38, (struct.unpack_from('!I', f, 38)[0] + per_pass) & 0xffffffff)
    t0 = ticks(); r0 = reader_ticks(); w0 = time.monotonic()
    for j in range(0, len(measured), chunk):
        for f in measured[j:j + chunk]:
            send(f)
        sent += min(chunk, len(measured) - j)
        want = base + sent * unit
        wait = time.monotonic() + 2
        while taken() < want:
            if time.monotonic() > wait:
                raise SystemExit('the reader took %d of %d' % ((taken() - base) // unit, sent))
        if busy + time.monotonic() - w0 >= seconds:
            break
    busy += time.monotonic() - w0; tick_sum += ticks() - t0; reader_sum += reader_ticks() - r0; passes += 1
print(json.dumps({'sent': sent, 'taken': (taken() - base) // unit, 'ticks': tick_sum, 'readerTicks': reader_sum, 'seconds': busy,
                  'passes': passes, 'setupFrames': len(setup)}))
""";
}
