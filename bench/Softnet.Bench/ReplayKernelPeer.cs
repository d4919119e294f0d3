using System.Globalization;
using System.Text.Json;
using Softnet.Capture;
using Softnet.KernelTests.Support;

namespace Softnet.Bench;

/// <summary>
/// `bench replay`'s kernel peer: the same frames through the kernel's receive path, as the project's path benchmarks
/// measure the kernel. Two namespaces joined by a veth pair, GRO on at the receiving end (veth then polls with NAPI and
/// runs napi_gro_receive, as `softnet replay` runs GRO linux); an AF_PACKET sender pinned to one CPU injects the
/// capture's frames in a loop; the kernel's cost per packet is that CPU's softirq time (/proc/stat, its idle rate
/// subtracted) over the frames the receiving device counted. The receiving device's address is not the frames'
/// destination, so every frame is PACKET_OTHERHOST and ip_rcv drops it: like `softnet replay`'s decode stack, the
/// kernel parses the frame to its transport header (GRO's IPv4 and UDP checksum checks included) and delivers it to no
/// socket. The sender's own system time (the AF_PACKET send and veth's transmit) is not counted: it stands for the
/// wire and the NIC. Softnet's figure is the whole replay, its reader and its port's copy included.
/// </summary>
public static class ReplayKernelPeer
{
    /// <summary>The receiving device's MAC: not the generator's destination, so the kernel drops the frames at ip_rcv.</summary>
    private const string RxMac = "02:00:00:00:77:02";
    /// <summary>Distinct frames taken from the head of the capture and sent round and round.</summary>
    private const int Frames = 4096;

    public readonly record struct Result(double NsPerPacket, long Received, double SoftirqSeconds, double SendSeconds);

    public const string Method = "softirq time from /proc/stat (the sending CPU, its idle rate subtracted) while a python3 AF_PACKET sender pinned to that CPU " +
        "sends the capture's first 4096 frames round and round over veth into a netns whose receiving veth has GRO on (NAPI, napi_gro_receive) and a MAC " +
        "that is not the frames' destination (PACKET_OTHERHOST: dropped in ip_rcv after GRO, delivered to no socket, as softnet replay's decode stack); " +
        "packets = rx_packets of the receiving veth";

    public static string? Unavailable() => Netns.Unavailable("ethtool", "python3", "taskset");

    /// <summary>The kernel's softirq time per frame for the frames at the head of <paramref name="capture"/>, sent for
    /// <paramref name="seconds"/> from CPU <paramref name="cpu"/>; null (with the reason on stderr) when nothing was measured.</summary>
    public static Result? Measure(string capture, int cpu, double seconds, double idleTicksPerSecond)
    {
        string work = Directory.CreateTempSubdirectory("softnet-replay-k-").FullName;
        Netns? tx = null, rx = null;
        try
        {
            string frames = Path.Combine(work, "frames.bin"), script = Path.Combine(work, "send.py");
            using (var reader = CaptureReader.Open(capture))
            using (var w = new BinaryWriter(File.Create(frames)))
            {
                for (int n = 0; n < Frames && reader.TryRead(out _, out var frame); n++)
                {
                    w.Write((ushort)frame.Length);
                    w.Write(frame);
                }
            }
            File.WriteAllText(script, SenderScript);
            tx = Netns.Create("snrk-tx");
            rx = Netns.Create("snrk-rx");
            Netns.CreateVeth(tx, "snrk-t", rx, "snrk-r");
            rx.Check("ip", "link", "set", "snrk-r", "address", RxMac);
            rx.Check("ethtool", "-K", "snrk-r", "gro", "on");
            if (!rx.Check("ethtool", "-k", "snrk-r").Contains("generic-receive-offload: on", StringComparison.Ordinal))
            {
                Console.Error.WriteLine("bench replay: kernel peer: GRO did not turn on for the veth");
                return null;
            }
            long before = ScenarioBench.LinkStats(rx.Name)["snrk-r"].Rx;
            var run = Proc.Run("ip", ["netns", "exec", tx.Name, "taskset", "-c", cpu.ToString(CultureInfo.InvariantCulture), "python3", script,
                frames, "snrk-t", seconds.ToString(CultureInfo.InvariantCulture), cpu.ToString(CultureInfo.InvariantCulture)], (int)(seconds * 1000) + 60_000);
            if (run.Exit != 0) throw new InvalidOperationException($"sender failed: {run.Stderr.Trim()}");
            using var doc = JsonDocument.Parse(run.Stdout);
            var o = doc.RootElement;
            // The warm-up pass went before the softirq count started.
            long received = ScenarioBench.LinkStats(rx.Name)["snrk-r"].Rx - before - o.GetProperty("warm").GetInt64();
            double busy = o.GetProperty("seconds").GetDouble();
            double soft = (o.GetProperty("ticks").GetInt64() - idleTicksPerSecond * busy) / ScenarioBench.UserHz;
            if (received <= 0 || soft <= 0)
            {
                Console.Error.WriteLine($"bench replay: kernel peer: nothing measured (received {received}, softirq {soft:F3} s)");
                return null;
            }
            return new Result(soft * 1e9 / received, received, soft, busy);
        }
        finally
        {
            rx?.Dispose();
            tx?.Dispose();
            try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }

    /// <summary>The AF_PACKET sender: the frames round and round for the given seconds (a warm-up pass first); prints
    /// the frames sent, the seconds and the softirq ticks of its CPU over the measured part.</summary>
    private const string SenderScript = """
import json, os, socket, struct, sys, time
path, dev, seconds, cpu = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
frames = []
with open(path, 'rb') as f:
    data = f.read()
at = 0
while at < len(data):
    n = struct.unpack_from('<H', data, at)[0]
    frames.append(data[at + 2:at + 2 + n]); at += 2 + n
def softirq():
    with open('/proc/stat') as f:
        for line in f:
            if line.startswith('cpu%d ' % cpu):
                return int(line.split()[7])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
send = s.send
for fr in frames: send(fr)
n = len(frames); sent = 0
t0 = time.monotonic(); a = softirq(); end = t0 + seconds
while time.monotonic() < end:
    for fr in frames: send(fr)
    sent += n
b = softirq(); t1 = time.monotonic()
print(json.dumps({'warm': n, 'sent': sent, 'seconds': t1 - t0, 'ticks': b - a}))
""";
}
