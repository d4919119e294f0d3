using Softnet.Tests.Support;
using CsCheck;
using Softnet.Gro;
using Softnet.Packets;
using Xunit;

namespace Softnet.Tests.Gro;

/// <summary>The seed-002 variants against the Linux engine, and properties every mode must keep.</summary>
public class GroVariantTests
{
    private static List<byte[]> Interleaved(int flows, int rounds, int payload = 1448)
    {
        var f = Enumerable.Range(0, flows).Select(i => new TcpSeg { Sport = (ushort)(20000 + i), PayloadLen = payload }).ToArray();
        var frames = new List<byte[]>();
        for (int r = 0; r < rounds; r++)
            for (int i = 0; i < flows; i++)
            {
                frames.Add(f[i].Build());
                f[i] = f[i].Next();
            }
        return frames;
    }

    [Fact]
    public void Off_is_identity()
    {
        var frames = Interleaved(3, 5);
        frames.Add(new TcpSeg { PayloadLen = 0, TcpOptions = [], Padding = 6 }.Build());
        frames.Add(GroIpRuleTests.UdpFrame(30));
        var outp = GroReplay.Run([frames], new GroOptions { Mode = GroMode.Off }, 0);
        Assert.Equal(frames.Count, outp.Count);
        for (int i = 0; i < frames.Count; i++) Assert.Equal(frames[i], outp[i]);
    }

    [Fact]
    public void Hash_merges_at_least_as_well_as_linux_with_64_interleaved_flows()
    {
        var frames = Interleaved(64, 10);
        var linux = GroReplay.Run([frames], new GroOptions(), 0);
        var hash = GroReplay.Run([frames], new GroOptions { Mode = GroMode.Hash }, 0);
        Assert.True(hash.Count <= linux.Count);
        Assert.Equal(640, linux.Count); // everything in bucket 0: each flow is evicted before its next segment
        Assert.Equal(64, hash.Count);
        Assert.All(Delivered.Payloads(hash), p => Assert.Equal(14480, p));
    }

    [Fact]
    public void Hash_applies_the_same_flush_rules()
    {
        var a = new TcpSeg();
        var segs = new[] { a, a.Next(), a.Next().Next() with { Ack = 1 } };
        var o = new GroOptions { Mode = GroMode.Hash };
        Assert.Equal([200, 100], Delivered.Payloads(GroRun.One(o, segs)));
    }

    private static TcpSeg PureAck(uint ack) => new() { PayloadLen = 0, TcpOptions = [], Ack = ack, Padding = 6, Id = (ushort)ack };

    [Fact]
    public void Ack_coalesces_pure_acks_keeping_the_latest()
    {
        var acks = Enumerable.Range(0, 10).Select(i => PureAck(5000 + (uint)i * 1448)).ToArray();
        var linux = GroRun.One(acks);
        Assert.Equal(10, linux.Count);
        var engineOpts = new GroOptions { Mode = GroMode.Ack };
        var outp = GroRun.One(engineOpts, acks);
        var latest = Assert.Single(outp);
        Assert.Equal(acks[^1].Ack, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(latest.AsSpan(14 + 20 + 8)));
    }

    [Fact]
    public void Ack_duplicate_ack_ends_the_run()
    {
        var outp = GroRun.One(new GroOptions { Mode = GroMode.Ack }, PureAck(100), PureAck(200), PureAck(200) with { Id = 7 }, PureAck(300));
        var acks = outp.Select(f => System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(14 + 20 + 8))).ToArray();
        Assert.Equal([200u, 200u, 300u], acks);
    }

    [Fact]
    public void Ack_acks_with_sack_are_never_coalesced()
    {
        byte[] sack = [1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        var a = PureAck(100) with { TcpOptions = sack, Padding = 0 };
        var outp = GroRun.One(new GroOptions { Mode = GroMode.Ack }, a, a with { Id = 9 }, a with { Id = 10 });
        Assert.Equal(3, outp.Count);
    }

    [Fact]
    public void Ack_data_segments_still_merge()
    {
        var t = GroRun.Train(new TcpSeg(), 4);
        Assert.Equal([400], Delivered.Payloads(GroRun.One(new GroOptions { Mode = GroMode.Ack }, t)));
    }

    [Fact]
    public void Gro_never_loses_or_reorders_bytes_within_a_flow()
    {
        Gen.Select(Gen.Int[0, int.MaxValue], Gen.Int[0, 3]).Sample((seed, modeIndex) =>
        {
            var mode = (GroMode)modeIndex;
            var rng = new Random(seed);
            int flows = rng.Next(1, 12);
            var state = Enumerable.Range(0, flows).Select(i => new TcpSeg
            {
                V6 = rng.Next(2) == 0,
                Sport = (ushort)(30000 + i),
                Seq = (uint)rng.Next(),
                PayloadLen = rng.Next(1, 1449),
            }).ToArray();
            var sent = Enumerable.Range(0, flows).Select(_ => new List<byte>()).ToArray();
            var bursts = new List<IReadOnlyList<byte[]>>();
            int total = rng.Next(1, 300);
            var burst = new List<byte[]>();
            for (int n = 0; n < total; n++)
            {
                int i = rng.Next(flows);
                var s = state[i];
                int roll = rng.Next(20);
                if (roll == 0) s = s with { Flags = TcpSeg.AckF | TcpSeg.Psh };
                else if (roll == 1) s = s with { Ack = s.Ack + 1 };
                else if (roll == 2) s = s with { PayloadLen = rng.Next(1, 1449) };
                else if (roll == 3) s = s with { PayloadLen = 0 };
                else s = s with { Flags = TcpSeg.AckF };
                burst.Add(s.Build());
                for (int k = 0; k < s.PayloadLen; k++) sent[i].Add(TcpSeg.PayloadByte(s.Seq, k));
                state[i] = s.Next(s.PayloadLen == 0 ? rng.Next(1, 1449) : null);
                if (rng.Next(40) == 0)
                {
                    bursts.Add(burst);
                    burst = new List<byte[]>();
                }
            }
            bursts.Add(burst);
            var outp = GroReplay.Run(bursts, new GroOptions { Mode = mode }, 0);
            var got = Enumerable.Range(0, flows).Select(_ => new List<byte>()).ToArray();
            foreach (var f in outp)
            {
                var d = Delivered.Parse(f);
                got[d.Sport - 30000].AddRange(Delivered.PayloadBytes(f).ToArray());
            }
            for (int i = 0; i < flows; i++) Assert.Equal(sent[i], got[i]);
        }, iter: 150);
    }

    [Fact]
    public void Gro_steady_state_allocates_nothing_per_segment()
    {
        var gro = new GroSteadyState();
        var frames = Interleaved(8, 8).ToArray();
        for (int w = 0; w < 20; w++) gro.Run(frames);
        long bytes = gro.AllocatedOver(frames, 200);
        AllocationAssert.NothingPerOperation(bytes, 200 * frames.Length, "segments");
        Assert.Equal(0, gro.Skbs.InUse);
    }
}
