using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Softnet.Capture.Live;
using Softnet.KernelTests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Softnet.KernelTests.Live;

/// <summary>
/// The AF_XDP live port against the real kernel: two namespaces joined by a veth pair, an <see cref="XskPort"/> on one
/// end and an AF_PACKET socket on the other sending and capturing frames.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class XskPortKernelTests(ITestOutputHelper output)
{
    private static string? SkipReason()
        => !OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64 ? "AF_XDP ports need Linux x86-64"
            : Netns.Unavailable() ?? (!Directory.Exists("/sys/fs/bpf") && !File.Exists("/proc/sys/net/core/bpf_jit_enable")
                ? "the kernel has no BPF" : null);

    /// <summary>Two namespaces, veth "xa" (the port's side) and "xb" (the peer's), IPv6 off so no stray frames.</summary>
    private sealed class Pair : IDisposable
    {
        public Netns A { get; } = Netns.Create("sn-xa");
        public Netns B { get; } = Netns.Create("sn-xb");
        public const string IfA = "xa0", IfB = "xb0";

        public Pair(int queues = 1)
        {
            A.DisableIpv6();
            B.DisableIpv6();
            if (queues == 1) Netns.CreateVeth(A, IfA, B, IfB);
            else
            {
                string q = queues.ToString();
                Proc.Check("ip", "link", "add", "name", IfA, "netns", A.Name, "numtxqueues", q, "numrxqueues", q, "type", "veth",
                    "peer", "name", IfB, "netns", B.Name, "numtxqueues", q, "numrxqueues", q);
                A.Check("ip", "link", "set", IfA, "up");
                B.Check("ip", "link", "set", IfB, "up");
            }
        }

        public XskPort Open(int queues = 1, int ringFrames = 256, bool native = true)
            => XskPort.Open(new LivePortOptions { Interface = IfA, Netns = A.Name, Queues = queues, RingFrames = ringFrames }, native);

        public void Dispose()
        {
            A.Dispose();
            B.Dispose();
        }
    }

    private const ushort TestEtherType = 0x88b5; // IEEE local experimental: nothing else sends it

    /// <summary>A test frame: broadcast destination, a fixed source, the experimental EtherType, then the sequence
    /// number and a pattern derived from it.</summary>
    private static byte[] Frame(int seq, int length = 60)
    {
        var f = new byte[length];
        f.AsSpan(0, 6).Fill(0xff);
        f[6] = 0x02; f[7] = 0x00; f[8] = 0x5e; f[9] = 0x10; f[10] = 0x00; f[11] = 0x01;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), TestEtherType);
        BinaryPrimitives.WriteInt32BigEndian(f.AsSpan(14), seq);
        for (int i = 18; i < length; i++) f[i] = (byte)(seq * 7 + i);
        return f;
    }

    /// <summary>An IPv4/UDP frame whose source port varies with <paramref name="seq"/>, so the peer's transmit hash
    /// (skb_tx_hash over the flow) spreads frames across a multiqueue veth.</summary>
    private static byte[] UdpFrame(int seq)
    {
        var f = new byte[60];
        f.AsSpan(0, 6).Fill(0xff);
        f[6] = 0x02; f[11] = 0x02;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), 0x0800);
        f[14] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), 46);
        f[22] = 64; f[23] = 17;
        f[26] = 10; f[29] = 1; f[30] = 10; f[33] = 2;
        ushort sum = 0; uint acc = 0;
        for (int i = 14; i < 34; i += 2) acc += BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(i));
        while (acc > 0xffff) acc = (acc & 0xffff) + (acc >> 16);
        sum = (ushort)~acc;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(24), sum);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(34), (ushort)(1000 + seq));
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(36), 9);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(38), 26);
        BinaryPrimitives.WriteInt32BigEndian(f.AsSpan(42), seq);
        return f;
    }

    /// <summary>Receives until <paramref name="count"/> test frames (EtherType 0x88b5 or UDP to port 9) were taken or
    /// the time runs out; returns copies with the queue each came on.</summary>
    private static List<(int Queue, byte[] Bytes)> ReceiveFrames(XskPort port, int count, int timeoutMs)
    {
        var got = new List<(int, byte[])>();
        var batch = new LiveFrame[64];
        var sw = Stopwatch.StartNew();
        while (got.Count < count && sw.ElapsedMilliseconds < timeoutMs)
        {
            port.WaitReceive(50);
            for (int q = 0; q < port.Queues; q++)
            {
                int n = port.Receive(q, batch);
                for (int i = 0; i < n; i++)
                {
                    var b = port.Bytes(q, batch[i]);
                    if (IsTestFrame(b)) got.Add((q, b.ToArray()));
                }
                port.Release(q);
            }
        }
        return got;
    }

    private static bool IsTestFrame(ReadOnlySpan<byte> b)
        => b.Length >= 18 && (BinaryPrimitives.ReadUInt16BigEndian(b[12..]) == TestEtherType
            || (b.Length >= 42 && BinaryPrimitives.ReadUInt16BigEndian(b[12..]) == 0x0800 && b[23] == 17
                && BinaryPrimitives.ReadUInt16BigEndian(b[36..]) == 9));

    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void FramesFromThePeerArriveByteExact(bool native)
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        using var pair = new Pair();
        using var port = pair.Open(native: native);
        output.WriteLine($"xdp mode {port.XdpMode}, zero-copy {port.ZeroCopy}");
        Assert.Equal(native ? "native" : "generic", port.XdpMode);
        using var peer = PacketSocket.Open(pair.B.Name, Pair.IfB);
        var sent = Enumerable.Range(0, 200).Select(i => Frame(i, 60 + i * 7)).ToList();
        foreach (var f in sent) peer.Send(f);
        var got = ReceiveFrames(port, sent.Count, 5000);
        Assert.Equal(sent.Count, got.Count);
        for (int i = 0; i < sent.Count; i++) Assert.Equal(sent[i], got[i].Bytes);
        var s = port.ReadStats();
        Assert.True(s.RxPackets >= sent.Count);
        Assert.Equal(0, s.KernelRxDropped);
        Assert.True(port.LinkUp);
    }

    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void TwoQueuesReceiveFramesSpreadByTheFlowHash(bool native)
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        using var pair = new Pair(queues: 2);
        using var port = pair.Open(queues: 2, native: native);
        output.WriteLine($"xdp mode {port.XdpMode}");
        using var peer = PacketSocket.Open(pair.B.Name, Pair.IfB);
        var sent = Enumerable.Range(0, 256).Select(UdpFrame).ToList();
        foreach (var f in sent) peer.Send(f);
        var got = ReceiveFrames(port, sent.Count, 5000);
        Assert.Equal(sent.Count, got.Count);
        var bySeq = got.ToDictionary(g => BinaryPrimitives.ReadInt32BigEndian(g.Bytes.AsSpan(42)));
        for (int i = 0; i < sent.Count; i++) Assert.Equal(sent[i], bySeq[i].Bytes);
        int q0 = got.Count(g => g.Queue == 0), q1 = got.Count(g => g.Queue == 1);
        output.WriteLine($"queue 0: {q0}, queue 1: {q1}");
        if (native)
            Assert.True(q0 > 0 && q1 > 0, $"frames not spread: queue 0 {q0}, queue 1 {q1}");
        else
        {
            // Generic XDP takes the queue from skb->queue_mapping as an RX queue (netif_get_rxqueue: recorded means
            // mapping - 1), and veth's skb path leaves the peer's TX queue there unrecorded (veth_xmit no longer calls
            // skb_record_rx_queue): TX queue 0 reads as "not recorded" and 1 as RX queue 0, so every frame is queue 0.
            Assert.Equal(0, q1);
        }
    }

    [SkippableFact]
    public void TransmittedFramesArriveByteExactOnThePeer()
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        using var pair = new Pair();
        using var port = pair.Open(ringFrames: 64);
        using var peer = PacketSocket.Open(pair.B.Name, Pair.IfB);
        const int n = 500; // more than the TX ring, so chunks must come back through the COMPLETION ring
        var sent = Enumerable.Range(0, n).Select(i => Frame(i, 60 + i % 1400)).ToList();
        int queued = 0;
        var sw = Stopwatch.StartNew();
        while (queued < n && sw.ElapsedMilliseconds < 5000)
        {
            while (queued < n && port.Transmit(0, sent[queued])) queued++;
            port.FlushTransmit(0);
        }
        Assert.Equal(n, queued);
        var got = new List<byte[]>();
        var buf = new byte[4096];
        sw.Restart();
        while (got.Count < n && sw.ElapsedMilliseconds < 5000)
        {
            port.FlushTransmit(0);
            int len = peer.Receive(buf, 100);
            if (len > 0 && IsTestFrame(buf.AsSpan(0, len))) got.Add(buf.AsSpan(0, len).ToArray());
        }
        Assert.Equal(n, got.Count);
        for (int i = 0; i < n; i++) Assert.Equal(sent[i], got[i]);
        var s = port.ReadStats();
        Assert.Equal(n, s.TxPackets);
        Assert.Equal(sent.Sum(f => (long)f.Length), s.TxBytes);
        Assert.Equal(0, s.TxErrors);
    }

    [SkippableFact]
    public void FramesNobodyReleasesAreCountedAsKernelDrops()
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        using var pair = new Pair();
        const int ring = 64, n = 300;
        using var port = pair.Open(ringFrames: ring);
        using var peer = PacketSocket.Open(pair.B.Name, Pair.IfB);
        for (int i = 0; i < n; i++) peer.Send(Frame(i));
        Thread.Sleep(200);
        var s = port.ReadStats();
        var k = port.KernelStats(0);
        output.WriteLine($"KernelRxDropped {s.KernelRxDropped} ring full {s.KernelRxRingFull}; xdp_statistics {k}");
        // The RX half of the UMEM holds `ring` frames; every later frame finds the FILL ring empty.
        Assert.True(s.KernelRxDropped >= n - ring - 16, $"KernelRxDropped {s.KernelRxDropped}");
        var got = ReceiveFrames(port, n, 1000);
        Assert.Equal(ring, got.Count);
        Assert.Equal(n, got.Count + s.KernelRxDropped);
        // Released: frames flow again.
        for (int i = 0; i < 10; i++) peer.Send(Frame(1000 + i));
        Assert.Equal(10, ReceiveFrames(port, 10, 3000).Count);
    }

    [SkippableFact]
    public void DownAndUpIsCountedAndFramesFlowAfter()
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        using var pair = new Pair();
        using var port = pair.Open();
        using var peer = PacketSocket.Open(pair.B.Name, Pair.IfB);
        Assert.True(port.LinkUp);
        pair.A.Check("ip", "link", "set", Pair.IfA, "down");
        Assert.False(port.LinkUp);
        pair.A.Check("ip", "link", "set", Pair.IfA, "up");
        var sw = Stopwatch.StartNew();
        while (!port.LinkUp && sw.ElapsedMilliseconds < 3000) Thread.Sleep(10);
        Assert.True(port.LinkUp);
        Assert.True(port.ReadStats().LinkDownEvents >= 1);
        for (int i = 0; i < 20; i++) peer.Send(Frame(i));
        var got = ReceiveFrames(port, 20, 3000);
        Assert.Equal(20, got.Count);
        // A down/up the port does not look at in between is still counted (rtnetlink queues the events).
        pair.A.Check("ip", "link", "set", Pair.IfA, "down");
        pair.A.Check("ip", "link", "set", Pair.IfA, "up");
        Thread.Sleep(100);
        Assert.True(port.ReadStats().LinkDownEvents >= 2);
    }

    [SkippableFact]
    public void ASecondOpenOfTheSameInterfaceIsRefused()
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        using var pair = new Pair();
        using (var port = pair.Open())
        {
            var e = Assert.Throws<LivePortException>(() => pair.Open());
            output.WriteLine(e.Message);
            Assert.Contains("already in use", e.Message);
        }
        // Released on Dispose: open again.
        using var again = pair.Open();
        Assert.Equal(LivePortKind.Xdp, again.Kind);
    }

    [SkippableFact]
    public void AMissingInterfaceIsRefusedClearly()
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        using var pair = new Pair();
        var e = Assert.Throws<LivePortException>(() => XskPort.Open(new LivePortOptions { Interface = "nosuch0", Netns = pair.A.Name }));
        Assert.Contains("no interface 'nosuch0'", e.Message);
        // More queues than the device has: bind refuses queue 1 (xsk_reg_pool_at_qid), and the lock and the first
        // queue's socket are given back.
        var q = Assert.Throws<LivePortException>(() => pair.Open(queues: 2));
        Assert.Contains("fewer queues", q.Message);
        using var one = pair.Open();
    }

    /// <summary>Frames per second one queue takes of 64-byte frames blasted from the peer (three seconds).</summary>
    [SkippableFact]
    public void MeasureOneQueueReceiveRate()
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        using var pair = new Pair();
        using var port = pair.Open(ringFrames: 4096);
        // The peer blasts through an AF_XDP port of its own (copy-mode TX, 32 frames a sendto): an AF_PACKET send
        // per frame could not keep one receive queue busy.
        using var peer = XskPort.Open(new LivePortOptions { Interface = Pair.IfB, Netns = pair.B.Name, RingFrames = 4096 });
        var frame = Frame(1, 64);
        var stop = new ManualResetEventSlim();
        var sender = new Thread(() =>
        {
            while (!stop.IsSet)
            {
                for (int i = 0; i < 256 && peer.Transmit(0, frame); i++) { }
                peer.FlushTransmit(0);
            }
        }) { IsBackground = true };
        var batch = new LiveFrame[64];
        long received = 0;
        sender.Start();
        var sw = Stopwatch.StartNew();
        // Warm up (tiering, first pages) before counting this thread's allocations over the measured loop.
        while (sw.ElapsedMilliseconds < 300)
            if (port.WaitReceive(10)) { port.Receive(0, batch); port.Release(0); }
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        sw.Restart();
        while (sw.ElapsedMilliseconds < 3000)
        {
            if (!port.WaitReceive(10)) continue;
            int n;
            while ((n = port.Receive(0, batch)) > 0)
            {
                received += n;
                port.Release(0);
            }
        }
        double secs = sw.Elapsed.TotalSeconds;
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        stop.Set();
        sender.Join();
        var s = port.ReadStats();
        long sent = peer.ReadStats().TxPackets;
        output.WriteLine($"xdp mode {port.XdpMode}: received {received} in {secs:F2} s = {received / secs:F0} frames/s; " +
            $"peer sent {sent} ({sent / secs:F0}/s); KernelRxDropped {s.KernelRxDropped}");
        Assert.True(received > 0);
        output.WriteLine($"bytes allocated by the receive loop: {allocated}");
        Assert.Equal(0, allocated);
    }

    /// <summary>An AF_PACKET socket bound to one interface in a namespace, for the peer's side.</summary>
    private sealed unsafe class PacketSocket : IDisposable
    {
        private readonly int _fd;
        private PacketSocket(int fd) => _fd = fd;

        public static PacketSocket Open(string netns, string ifname, bool qdiscBypass = false)
        {
            using var scope = new NetnsScope(netns);
            int ifindex = (int)if_nametoindex(ifname);
            int fd = socket(17 /* AF_PACKET */, 3 /* SOCK_RAW */, 0x0300 /* htons(ETH_P_ALL) */);
            if (fd < 0) throw new InvalidOperationException($"socket(AF_PACKET): errno {Marshal.GetLastPInvokeError()}");
            byte* sll = stackalloc byte[20];
            new Span<byte>(sll, 20).Clear();
            *(ushort*)sll = 17;
            *(ushort*)(sll + 2) = 0x0300;
            *(int*)(sll + 4) = ifindex;
            if (bind(fd, sll, 20) != 0) throw new InvalidOperationException($"bind AF_PACKET: errno {Marshal.GetLastPInvokeError()}");
            int rcvbuf = 32 << 20;
            setsockopt(fd, 1 /* SOL_SOCKET */, 33 /* SO_RCVBUFFORCE */, &rcvbuf, 4);
            if (qdiscBypass)
            {
                int one = 1;
                setsockopt(fd, 263 /* SOL_PACKET */, 20 /* PACKET_QDISC_BYPASS */, &one, 4);
            }
            return new PacketSocket(fd);
        }

        public void Send(ReadOnlySpan<byte> frame)
        {
            fixed (byte* p = frame) send(_fd, p, (nuint)frame.Length, 0);
        }

        /// <summary>One frame into <paramref name="buf"/>, or 0 after <paramref name="timeoutMs"/>.</summary>
        public int Receive(Span<byte> buf, int timeoutMs)
        {
            long pfd = (uint)_fd | (1L << 32); // struct pollfd { fd, events POLLIN, revents }
            if (poll(&pfd, 1, timeoutMs) <= 0) return 0;
            fixed (byte* p = buf) return (int)Math.Max(0, recv(_fd, p, (nuint)buf.Length, 0x40 /* MSG_DONTWAIT */));
        }

        public void Dispose() => close(_fd);

        [DllImport("libc", SetLastError = true)] private static extern int socket(int d, int t, int p);
        [DllImport("libc", SetLastError = true)] private static extern int bind(int fd, void* a, uint l);
        [DllImport("libc", SetLastError = true)] private static extern int setsockopt(int fd, int l, int n, void* v, uint len);
        [DllImport("libc", SetLastError = true)] private static extern nint send(int fd, void* b, nuint l, int f);
        [DllImport("libc", SetLastError = true)] private static extern nint recv(int fd, void* b, nuint l, int f);
        [DllImport("libc", SetLastError = true)] private static extern int poll(long* fds, nuint n, int t);
        [DllImport("libc")] private static extern int close(int fd);
        [DllImport("libc")] private static extern uint if_nametoindex([MarshalAs(UnmanagedType.LPUTF8Str)] string n);
    }
}
