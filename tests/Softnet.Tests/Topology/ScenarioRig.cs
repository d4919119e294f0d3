using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Softnet.Capture;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Topology;

namespace Softnet.Tests.Topology;

/// <summary>Locates the scenario folders beside this source file.</summary>
internal static class TopologyTestData
{
    public static string Dir([CallerFilePath] string here = "") => Path.Combine(Path.GetDirectoryName(here)!, "Data");
    public static string PathOf(string name) => Path.Combine(Dir(), name);
}

/// <summary>Collects frames a device tap sees.</summary>
internal sealed class RecordingTap : ICaptureWriter
{
    public List<byte[]> Frames { get; } = new();
    public void Write(long timestampNs, ReadOnlySpan<byte> frame, int originalLength = -1, int interfaceId = 0) => Frames.Add(frame.ToArray());
    public void Flush() { }
    public void Dispose() { }
}

/// <summary>A loaded scenario with recording taps on every device and its IPv4 path.</summary>
internal sealed class ScenarioRig
{
    public Scenario Scenario { get; }
    public NetStack Stack { get; }
    private long _ts = 1_000_000_000_000;

    /// <summary>The test scenario <paramref name="name"/>, with <paramref name="extraFiles"/> (path under the scenario
    /// folder → content) added in a copy.</summary>
    public ScenarioRig(string name, IReadOnlyDictionary<string, string>? extraFiles = null)
    {
        string dir = TopologyTestData.PathOf(name);
        if (extraFiles != null)
        {
            string copy = Directory.CreateTempSubdirectory("softnet-rig-").FullName;
            ScenarioFiles.Copy(dir, copy);
            foreach (var (path, text) in extraFiles) File.WriteAllText(Path.Combine(copy, path), text);
            dir = copy;
        }
        Scenario = ScenarioLoader.Load(dir);
        foreach (var ns in Scenario.Namespaces)
            foreach (var d in ns.Devices)
            {
                d.RxTap = new RecordingTap();
                d.TxTap = new RecordingTap();
            }
        Stack = new NetStack(Scenario.Namespaces);
    }

    public long Now => _ts;

    public Namespace Ns(string name) => Scenario.Namespace(name)!;
    public Device Dev(string ns, string dev) => Ns(ns).Device(dev)!;

    public void Inject(string ns, string dev, byte[] frame, long advanceNs = 1_000_000)
    {
        _ts += advanceNs;
        // A port hands the frame to the stack in an skb, as the NIC's DMA would fill one.
        Stack.Receive(Dev(ns, dev), Stack.SkbFrom(frame) ?? throw new InvalidOperationException("local skb pool exhausted"), _ts);
    }

    /// <summary>Time passes without a frame: the stack's timers due by then run.</summary>
    public void Advance(long ns)
    {
        _ts += ns;
        Stack.AdvanceClock(_ts);
    }

    public List<byte[]> Tx(string ns, string dev) => ((RecordingTap)Dev(ns, dev).TxTap!).Frames;
    public List<byte[]> Rx(string ns, string dev) => ((RecordingTap)Dev(ns, dev).RxTap!).Frames;

    public static byte[] Mac(string s) => Device.TryParseMac(s, out var m) ? m : throw new FormatException(s);

    public static byte[] Eth(string dst, string src, byte[] ip, ushort type = 0x0800)
    {
        var f = new byte[14 + ip.Length];
        Mac(dst).CopyTo(f, 0);
        Mac(src).CopyTo(f, 6);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), type);
        ip.CopyTo(f, 14);
        return f;
    }

    public static uint Src(byte[] frame) => BinaryPrimitives.ReadUInt32BigEndian(frame.AsSpan(14 + 12));
    public static uint Dst(byte[] frame) => BinaryPrimitives.ReadUInt32BigEndian(frame.AsSpan(14 + 16));
    public static ushort SrcPort(byte[] frame) => BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(14 + 20));
    public static ushort DstPort(byte[] frame) => BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(14 + 22));
    public static byte[] IpOf(byte[] frame) => frame.AsSpan(14).ToArray();
}
