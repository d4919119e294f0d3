using System.Buffers.Binary;
using System.Diagnostics;
using System.Text.Json;
using Softnet.Gro;
using Softnet.Packets;

namespace Softnet.Bench;

/// <summary>
/// `bench gro`: segments/s through <see cref="GroEngine"/> on generated 1448-byte TCP segments (iperf3-like:
/// timestamps option, incrementing IP ID) of 1, 8 and 64 flows interleaved round robin, each flow with its own
/// RSS hash, for the Linux engine and (64 flows) the Hash variant. The receive side is modelled as a NIC with
/// checksum offload (CHECKSUM_UNNECESSARY): per segment the bench rents a ring buffer, writes the 66 header bytes
/// (the DMA of the header; payload bytes are left in place), builds the skb and calls napi_gro_receive; every
/// 64 segments the poll ends with its budget used, which flushes skbs older than a jiffy on a clock advancing
/// 1230 ns per segment (10 GbE line rate).
/// </summary>
public static class GroBench
{
    private const int Payload = 1448, HeaderLen = 14 + 20 + 32, FrameLen = HeaderLen + Payload, Weight = 64;
    private const long NsPerSegment = 1230;

    public static int Run(BenchArgs args)
    {
        var cases = new (string Key, GroMode Mode, int Flows)[]
        {
            ("linux_flows_1", GroMode.Linux, 1),
            ("linux_flows_8", GroMode.Linux, 8),
            ("linux_flows_64", GroMode.Linux, 64),
            ("hash_flows_64", GroMode.Hash, 64),
        };
        var results = new List<(string Key, double Sps, double Ratio, double Alloc)>();
        foreach (var (key, mode, flows) in cases)
        {
            var c = new Case(mode, flows);
            c.Pass(200_000); // warm up (tiering, PGO)
            c.ResetStats();
            var (sps, alloc) = Measure(c, args.Seconds);
            double ratio = c.Engine.Stats.MergeRatio;
            results.Add((key, sps, ratio, alloc));
            Console.WriteLine($"{key,-16} {sps / 1e6,8:F2} M segments/s  merge ratio {ratio,6:F2}  {alloc,6:F2} B/segment allocated");
        }
        if (args.Json is not null)
        {
            using var f = File.Create(args.Json);
            using var w = new Utf8JsonWriter(f, new JsonWriterOptions { Indented = true });
            w.WriteStartObject();
            w.WriteNumber("payload_bytes", Payload);
            w.WriteStartObject("segments_per_s");
            foreach (var r in results) w.WriteNumber(r.Key, Math.Round(r.Sps));
            w.WriteEndObject();
            w.WriteStartObject("merge_ratio");
            foreach (var r in results) w.WriteNumber(r.Key, Math.Round(r.Ratio, 3));
            w.WriteEndObject();
            w.WriteNumber("alloc_bytes_per_segment", Math.Round(results.Max(r => r.Alloc), 4));
            w.WriteEndObject();
        }
        return 0;
    }

    private static (double Sps, double Alloc) Measure(Case c, double seconds)
    {
        const int chunk = 1 << 16;
        long segments = 0;
        long alloc0 = GC.GetAllocatedBytesForCurrentThread();
        var sw = Stopwatch.StartNew();
        do
        {
            c.Pass(chunk);
            segments += chunk;
        } while (sw.Elapsed.TotalSeconds < seconds);
        sw.Stop();
        long alloc = GC.GetAllocatedBytesForCurrentThread() - alloc0;
        return (segments / sw.Elapsed.TotalSeconds, (double)alloc / segments);
    }

    private sealed class Case : IGroSink
    {
        private readonly PagePool _pool = new(16384);
        private readonly SkbPool _skbs = new(16384);
        private readonly byte[][] _headers;
        private readonly uint[] _seq, _hash;
        private readonly ushort[] _id, _csum0;
        private readonly int _flows;
        private int _next, _inPoll;
        private long _now;

        public GroEngine Engine;

        public Case(GroMode mode, int flows)
        {
            _flows = flows;
            Engine = new GroEngine(new GroOptions { Mode = mode, PerFlowStats = false }, this);
            _headers = new byte[flows][];
            _seq = new uint[flows];
            _hash = new uint[flows];
            _id = new ushort[flows];
            _csum0 = new ushort[flows];
            var rng = new Random(1);
            for (int i = 0; i < flows; i++)
            {
                _headers[i] = Header(i);
                _seq[i] = (uint)rng.Next();
                _hash[i] = (uint)rng.Next(1, int.MaxValue);
                _csum0[i] = BinaryPrimitives.ReadUInt16BigEndian(_headers[i].AsSpan(14 + 10));
            }
        }

        public void ResetStats() => Engine = new GroEngine(Engine.Options, this);

        public void Pass(int segments)
        {
            for (int n = 0; n < segments; n++)
            {
                int f = _next;
                if (++_next == _flows) _next = 0;
                if (!_pool.TryRent(out int index)) throw new InvalidOperationException("bench pool exhausted");
                Span<byte> buf = _pool.Slice(index, _pool.Headroom, HeaderLen);
                _headers[f].CopyTo(buf);
                ushort id = _id[f]++;
                BinaryPrimitives.WriteUInt16BigEndian(buf.Slice(14 + 4), id);
                BinaryPrimitives.WriteUInt16BigEndian(buf.Slice(14 + 10), Checksum.Update16(_csum0[f], 0, id));
                BinaryPrimitives.WriteUInt32BigEndian(buf.Slice(34 + 4), _seq[f]);
                _seq[f] += Payload;
                Skb skb = _skbs.Build(_pool, index, _pool.Headroom, FrameLen)!;
                skb.ResetMacHeader();
                skb.SetHash(_hash[f], PktHashType.L4);
                skb.IpSummed = CsumState.Unnecessary;
                Engine.Receive(skb, _now);
                _now += NsPerSegment;
                if (++_inPoll == Weight)
                {
                    _inPoll = 0;
                    Engine.PollComplete(Weight, Weight, _now);
                }
            }
        }

        public void Deliver(ReadOnlySpan<Skb> batch)
        {
            foreach (Skb s in batch) s.Free();
        }

        private static byte[] Header(int flow)
        {
            var h = new byte[HeaderLen];
            h[5] = 2; h[11] = 1; h[12] = 0x08;
            Span<byte> ip = h.AsSpan(14, 20);
            ip[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(2), 20 + 32 + Payload);
            ip[6] = 0x40;
            ip[8] = 64;
            ip[9] = 6;
            ip[12] = 10; ip[15] = 1; ip[16] = 10; ip[19] = 2;
            BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(10), Checksum.Compute(ip));
            Span<byte> tcp = h.AsSpan(34, 32);
            BinaryPrimitives.WriteUInt16BigEndian(tcp, (ushort)(40000 + flow));
            BinaryPrimitives.WriteUInt16BigEndian(tcp.Slice(2), 5201);
            BinaryPrimitives.WriteUInt32BigEndian(tcp.Slice(8), 1);
            tcp[12] = 8 << 4;
            tcp[13] = 0x10;
            BinaryPrimitives.WriteUInt16BigEndian(tcp.Slice(14), 502);
            tcp[20] = 1; tcp[21] = 1; tcp[22] = 8; tcp[23] = 10;
            return h;
        }
    }
}
