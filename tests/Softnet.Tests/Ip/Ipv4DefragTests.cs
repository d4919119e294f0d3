using System.Buffers.Binary;
using CsCheck;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Packets;
using Softnet.Telemetry;
using Softnet.Tests.Topology;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;
using static Softnet.Tests.Topology.ScenarioRig;

namespace Softnet.Tests.Ip;

/// <summary>IPv4 reassembly (ip_defrag, inet_frag_queue_insert, ip_expire) and fragmentation on output
/// (ip_do_fragment), on the router rig: left (10.1.0.2) --- r (10.1.0.1 / 10.2.0.1) --- right (10.2.0.2).</summary>
public class Ipv4DefragTests
{
    private const string R0 = "02:00:00:01:00:02", L0 = "02:00:00:01:00:01", R1 = "02:00:00:02:00:01", RT0 = "02:00:00:02:00:02";

    /// <summary>Cuts <paramref name="ip"/> (a whole datagram, 20-byte header) into fragments of
    /// <paramref name="dataPerFragment"/> data bytes (a multiple of 8), as a sender would.</summary>
    internal static List<byte[]> Fragments(byte[] ip, int dataPerFragment, ushort id = 0x4242, bool df = false)
    {
        var list = new List<byte[]>();
        int data = ip.Length - 20;
        for (int off = 0; off < data; off += dataPerFragment)
            list.Add(Piece(ip, off, Math.Min(dataPerFragment, data - off), more: off + dataPerFragment < data, id, df));
        return list;
    }

    /// <summary>One fragment of <paramref name="ip"/>: data bytes [offset, offset+len) behind a copy of its header.</summary>
    internal static byte[] Piece(byte[] ip, int offset, int len, bool more, ushort id = 0x4242, bool df = false)
    {
        var f = new byte[20 + len];
        ip.AsSpan(0, 20).CopyTo(f);
        ip.AsSpan(20 + offset, len).CopyTo(f.AsSpan(20));
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(2), (ushort)f.Length);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(4), id);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(6), (ushort)((offset >> 3) | (more ? 0x2000 : 0) | (df ? 0x4000 : 0)));
        f[10] = f[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(10), Checksum.Compute(f.AsSpan(0, 20)));
        return f;
    }

    private static byte[] Ping(int payload, string src = "10.1.0.2", string dst = "10.1.0.1")
    {
        var body = new byte[payload];
        for (int i = 0; i < payload; i++) body[i] = (byte)(i * 7 + 3);
        return Icmp(src, dst, 8, 0, 77, body);
    }

    /// <summary>The rig with r knowing left's MAC (an ARP request from left), so its answers go out at once.</summary>
    private static ScenarioRig Rig()
    {
        var rig = new ScenarioRig("router");
        rig.Inject("r", "r0", PacketFactory.Arp(1, Mac("ff:ff:ff:ff:ff:ff"), Mac(L0), Mac(L0), A("10.1.0.2"), default, A("10.1.0.1")));
        rig.Tx("r", "r0").Clear();
        return rig;
    }

    private static long Mib(ScenarioRig rig, SnmpCounter c, string ns = "r") => rig.Ns(ns).Mib[c];

    /// <summary>Reassembles the IP fragments in <paramref name="frames"/> (Ethernet frames) by offset.</summary>
    private static byte[] Join(IEnumerable<byte[]> frames)
    {
        var ips = frames.Select(IpOf).OrderBy(p => BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(6)) & 0x1FFF).ToList();
        var data = new List<byte>();
        foreach (var p in ips) data.AddRange(p.AsSpan(20).ToArray());
        var whole = ips[0].AsSpan(0, 20).ToArray().Concat(data).ToArray();
        BinaryPrimitives.WriteUInt16BigEndian(whole.AsSpan(2), (ushort)whole.Length);
        return whole;
    }

    private static void AssertEchoReplyTo(ScenarioRig rig, byte[] request)
    {
        var tx = rig.Tx("r", "r0");
        // 20 + 8 + payload bytes leave r0 (MTU 1500) as fragments of 1480 data bytes.
        int expected = (request.Length - 20 + 1479) / 1480;
        Assert.Equal(expected, tx.Count);
        foreach (var f in tx) Assert.True(Checksum.Verify(f.AsSpan(14, 20)));
        var reply = Join(tx);
        Assert.Equal(request.Length, reply.Length);
        Assert.Equal(0, reply[20]);
        Assert.Equal(request.AsSpan(24).ToArray(), reply.AsSpan(24).ToArray());
        Assert.True(Checksum.Verify(reply.AsSpan(20)));
        Assert.Equal(1, Mib(rig, SnmpCounter.IpFragOKs));
        Assert.Equal(expected, Mib(rig, SnmpCounter.IpFragCreates));
    }

    [Fact]
    public void In_order_fragments_of_an_echo_request_are_reassembled_and_answered_in_fragments()
    {
        var rig = Rig();
        var req = Ping(3000);
        foreach (var f in Fragments(req, 1200)) rig.Inject("r", "r0", Eth(R0, L0, f));
        var r = rig.Ns("r");
        Assert.Equal(3, Mib(rig, SnmpCounter.IpReasmReqds));
        Assert.Equal(1, Mib(rig, SnmpCounter.IpReasmOKs));
        Assert.Equal(0, Mib(rig, SnmpCounter.IpReasmFails));
        Assert.Equal(1, r.Counters.EchoReplies);
        Assert.Equal(2, r.Counters.FragMerged);
        Assert.Equal(0, r.Counters.FragHeld);
        Assert.Equal(0, r.Defrag.QueueCount);
        Assert.Equal(0, r.Defrag.Memory);
        AssertEchoReplyTo(rig, req);
        Assert.True(r.Counters.Conserved);
        Assert.True(rig.Ns("left").Counters.Conserved);
    }

    [Fact]
    public void Out_of_order_fragments_reassemble_the_same()
    {
        var rig = Rig();
        var req = Ping(3000);
        var frags = Fragments(req, 800);
        foreach (int i in new[] { 3, 0, 2, 1 }) rig.Inject("r", "r0", Eth(R0, L0, frags[i]));
        Assert.Equal(4, Mib(rig, SnmpCounter.IpReasmReqds));
        Assert.Equal(1, Mib(rig, SnmpCounter.IpReasmOKs));
        AssertEchoReplyTo(rig, req);
        Assert.True(rig.Ns("r").Counters.Conserved);
    }

    [Fact]
    public void A_duplicate_is_dropped_and_the_queue_kept()
    {
        var rig = Rig();
        var req = Ping(1992);
        var frags = Fragments(req, 1000);
        Assert.Equal(2, frags.Count);
        rig.Inject("r", "r0", Eth(R0, L0, frags[0]));
        rig.Inject("r", "r0", Eth(R0, L0, frags[0]));
        // Wholly inside what is held, though not the same bytes range as one fragment: still a duplicate.
        rig.Inject("r", "r0", Eth(R0, L0, Piece(req, 8, 16, more: true)));
        rig.Inject("r", "r0", Eth(R0, L0, frags[1]));
        var r = rig.Ns("r");
        Assert.Equal(2, r.Counters.Drops[DropReason.FragDuplicate]);
        Assert.Equal(0, Mib(rig, SnmpCounter.IpExtReasmOverlaps));
        Assert.Equal(0, Mib(rig, SnmpCounter.IpReasmFails));
        Assert.Equal(1, Mib(rig, SnmpCounter.IpReasmOKs));
        Assert.Equal(1, r.Counters.EchoReplies);
        AssertEchoReplyTo(rig, req);
        Assert.True(r.Counters.Conserved);
    }

    [Fact]
    public void An_overlap_drops_the_whole_datagram()
    {
        var rig = Rig();
        var req = Ping(2000);
        rig.Inject("r", "r0", Eth(R0, L0, Piece(req, 0, 1000, more: true)));
        rig.Inject("r", "r0", Eth(R0, L0, Piece(req, 504, 1000, more: true)));
        var r = rig.Ns("r");
        Assert.Equal(1, Mib(rig, SnmpCounter.IpExtReasmOverlaps));
        Assert.Equal(1, Mib(rig, SnmpCounter.IpReasmFails));
        Assert.Equal(2, r.Counters.Drops[DropReason.FragOverlap]);
        Assert.Equal(0, r.Defrag.QueueCount);
        // The rest of the datagram starts a new queue, which waits.
        rig.Inject("r", "r0", Eth(R0, L0, Piece(req, 1000, 1008, more: false)));
        Assert.Equal(1, r.Counters.FragHeld);
        Assert.Empty(rig.Tx("r", "r0"));
        Assert.True(r.Counters.Conserved);
    }

    [Fact]
    public void Overlap_with_an_earlier_run_in_the_middle_is_an_overlap_too()
    {
        var rig = Rig();
        var req = Ping(4000);
        rig.Inject("r", "r0", Eth(R0, L0, Piece(req, 2000, 1000, more: true)));
        rig.Inject("r", "r0", Eth(R0, L0, Piece(req, 0, 1000, more: true)));
        // Ends before the last fragment's end: placed by the runs; starts in the gap and runs into [2000, 3000).
        rig.Inject("r", "r0", Eth(R0, L0, Piece(req, 1600, 800, more: true)));
        Assert.Equal(1, Mib(rig, SnmpCounter.IpExtReasmOverlaps));
        Assert.Equal(3, rig.Ns("r").Counters.Drops[DropReason.FragOverlap]);
    }

    [Fact]
    public void An_incomplete_datagram_times_out_with_icmp_reassembly_time_exceeded()
    {
        var rig = Rig();
        var req = Ping(3000);
        var frags = Fragments(req, 1200);
        rig.Inject("r", "r0", Eth(R0, L0, frags[0]));
        rig.Inject("r", "r0", Eth(R0, L0, frags[1]));
        var r = rig.Ns("r");
        Assert.Equal(2, r.Counters.FragHeld);
        // ipfrag_time (30 s) later, on the replay clock: any later frame runs the timer first.
        rig.Inject("r", "r0", PacketFactory.Arp(1, Mac("ff:ff:ff:ff:ff:ff"), Mac(L0), Mac(L0), A("10.1.0.2"), default, A("10.1.0.1")), advanceNs: 31_000_000_000);
        Assert.Equal(1, Mib(rig, SnmpCounter.IpReasmTimeout));
        Assert.Equal(1, Mib(rig, SnmpCounter.IpReasmFails));
        Assert.Equal(2, r.Counters.Drops[DropReason.FragReasmTimeout]);
        Assert.Equal(0, r.Counters.FragHeld);
        var tx = rig.Tx("r", "r0");
        var icmp = IpOf(tx[0]);
        Assert.Equal(1, icmp[9]);
        Assert.Equal(11, icmp[20]);
        Assert.Equal(1, icmp[21]);
        Assert.Equal(A("10.1.0.1"), BinaryPrimitives.ReadUInt32BigEndian(icmp.AsSpan(12)));
        // The quoted datagram is the first fragment (as much as fits in 576 bytes).
        Assert.Equal(frags[0].AsSpan(0, 548).ToArray(), icmp.AsSpan(28).ToArray());
        Assert.True(r.Counters.Conserved);
    }

    [Fact]
    public void A_timed_out_queue_without_its_first_fragment_sends_nothing()
    {
        var rig = Rig();
        rig.Ns("r").Sysctls["net.ipv4.ipfrag_time"] = "2";
        var frags = Fragments(Ping(3000), 1200);
        rig.Inject("r", "r0", Eth(R0, L0, frags[2]));
        rig.Inject("r", "r0", Eth(R0, L0, frags[1]), advanceNs: 1_900_000_000);
        Assert.Equal(0, Mib(rig, SnmpCounter.IpReasmTimeout));
        rig.Inject("r", "r0", PacketFactory.Arp(1, Mac("ff:ff:ff:ff:ff:ff"), Mac(L0), Mac(L0), A("10.1.0.2"), default, A("10.1.0.1")), advanceNs: 200_000_000);
        Assert.Equal(1, Mib(rig, SnmpCounter.IpReasmTimeout));
        Assert.DoesNotContain(rig.Tx("r", "r0"), f => f.Length > 34 && f[14 + 9] == 1);
        Assert.True(rig.Ns("r").Counters.Conserved);
    }

    [Fact]
    public void Memory_above_high_thresh_refuses_new_fragments()
    {
        var rig = Rig();
        var r = rig.Ns("r");
        r.Sysctls["net.ipv4.ipfrag_high_thresh"] = "1";
        var a = Fragments(Ping(3000), 1200, id: 1);
        var b = Fragments(Ping(3000), 1200, id: 2);
        rig.Inject("r", "r0", Eth(R0, L0, a[0]));
        // Above the threshold now: neither a new queue nor the open one takes a fragment.
        rig.Inject("r", "r0", Eth(R0, L0, b[0]));
        rig.Inject("r", "r0", Eth(R0, L0, a[1]));
        Assert.Equal(2, r.Counters.Drops[DropReason.FragMemoryLimit]);
        Assert.Equal(2, Mib(rig, SnmpCounter.IpReasmFails));
        Assert.Equal(3, Mib(rig, SnmpCounter.IpReasmReqds));
        Assert.Equal(1, r.Counters.FragHeld);
        Assert.True(r.Counters.Conserved);
    }

    [Fact]
    public void Malformed_fragments_drop_their_queue()
    {
        var rig = Rig();
        var r = rig.Ns("r");
        var req = Ping(3000);
        // Two last fragments that end in different places.
        rig.Inject("r", "r0", Eth(R0, L0, Piece(req, 2000, 1008, more: false, id: 1)));
        rig.Inject("r", "r0", Eth(R0, L0, Piece(req, 1000, 800, more: false, id: 1)));
        // Data past the last fragment.
        rig.Inject("r", "r0", Eth(R0, L0, Piece(req, 1000, 1000, more: false, id: 2)));
        rig.Inject("r", "r0", Eth(R0, L0, Piece(req, 1504, 1000, more: true, id: 2)));
        // A middle fragment with fewer than 8 bytes: nothing left once cut to a multiple of 8.
        rig.Inject("r", "r0", Eth(R0, L0, Piece(req, 0, 4, more: true, id: 3)));
        Assert.Equal(5, r.Counters.Drops[DropReason.FragInvalid]);
        Assert.Equal(3, Mib(rig, SnmpCounter.IpReasmFails));
        Assert.Equal(0, r.Defrag.QueueCount);
        Assert.Equal(0, r.Defrag.Memory);
        Assert.True(r.Counters.Conserved);
    }

    [Fact]
    public void Too_far_restarts_the_queue_after_max_dist_fragments_from_the_source()
    {
        var rig = Rig();
        var r = rig.Ns("r");
        r.Sysctls["net.ipv4.ipfrag_max_dist"] = "2";
        var a = Fragments(Ping(3000), 1200, id: 1);
        rig.Inject("r", "r0", Eth(R0, L0, a[0]));
        for (ushort i = 0; i < 3; i++) rig.Inject("r", "r0", Eth(R0, L0, Fragments(Ping(3000), 1200, id: (ushort)(10 + i))[2]));
        rig.Inject("r", "r0", Eth(R0, L0, a[1]));
        Assert.Equal(1, r.Counters.Drops[DropReason.FragTooFar]);
        Assert.Equal(1, Mib(rig, SnmpCounter.IpReasmFails));
        Assert.Equal(4, r.Counters.FragHeld);
        Assert.True(r.Counters.Conserved);
    }

    [Fact]
    public void Forwarded_fragments_without_conntrack_go_as_they_are()
    {
        var rig = Rig();
        var frags = Fragments(Udp("10.1.0.2", 5000, "10.2.0.2", 53, 2500), 1200);
        foreach (var f in frags) rig.Inject("r", "r0", Eth(R0, L0, f));
        var tx = rig.Tx("r", "r1");
        Assert.Equal(3, tx.Count);
        for (int i = 0; i < 3; i++)
        {
            var expected = (byte[])frags[i].Clone();
            expected[8]--;
            expected[10] = expected[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(expected.AsSpan(10), Checksum.Compute(expected.AsSpan(0, 20)));
            Assert.Equal(expected, IpOf(tx[i]));
        }
        Assert.Equal(0, Mib(rig, SnmpCounter.IpReasmReqds));
        // The three fragments, and the port unreachable the far host answers once it reassembled them (no socket on 53).
        Assert.Equal(4, rig.Ns("r").Counters.Forwarded);
        var back = Assert.Single(rig.Tx("r", "r0"));
        Assert.Equal((byte)IpProtocols.Icmp, IpOf(back)[9]);
        Assert.Equal(3, IpOf(back)[20]);
    }

    [Fact]
    public void A_fragment_bigger_than_the_egress_mtu_is_cut_again_keeping_its_offset_and_mf()
    {
        var rig = Rig();
        rig.Dev("r", "r1").Mtu = 600;
        var udp = Udp("10.1.0.2", 5000, "10.2.0.2", 53, 2500);
        var frags = Fragments(udp, 1200);
        rig.Inject("r", "r0", Eth(R0, L0, frags[1]));
        var tx = rig.Tx("r", "r1");
        // 1200 data bytes at offset 1200, MF: 576 + 576 + 48, all MF.
        Assert.Equal(3, tx.Count);
        int[] offsets = [1200, 1776, 2352];
        for (int i = 0; i < 3; i++)
        {
            var p = IpOf(tx[i]);
            ushort fo = BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(6));
            Assert.Equal(offsets[i], (fo & 0x1FFF) << 3);
            Assert.Equal(0x2000, fo & 0xE000);
            Assert.Equal(0x4242, BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(4)));
            Assert.Equal(udp.AsSpan(20 + offsets[i], p.Length - 20).ToArray(), p.AsSpan(20).ToArray());
        }
        Assert.Equal(1, Mib(rig, SnmpCounter.IpFragOKs));
        Assert.Equal(3, Mib(rig, SnmpCounter.IpFragCreates));
    }

    [Fact]
    public void A_df_datagram_over_the_egress_mtu_gets_fragmentation_needed()
    {
        var rig = Rig();
        rig.Dev("r", "r1").Mtu = 600;
        var udp = Udp("10.1.0.2", 5000, "10.2.0.2", 53, 1000);
        udp[6] = 0x40;
        udp[10] = udp[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(10), Checksum.Compute(udp.AsSpan(0, 20)));
        rig.Inject("r", "r0", Eth(R0, L0, udp));
        Assert.Empty(rig.Tx("r", "r1"));
        var icmp = IpOf(Assert.Single(rig.Tx("r", "r0")));
        Assert.Equal(3, icmp[20]);
        Assert.Equal(4, icmp[21]);
        Assert.Equal(600, BinaryPrimitives.ReadUInt16BigEndian(icmp.AsSpan(26)));
        // ip_forward counts the refusal as a fragmentation failure (checked against nstat on 6.18).
        Assert.Equal(1, Mib(rig, SnmpCounter.IpFragFails));
    }

    /// <summary>Through a namespace with conntrack (docker's host: MASQUERADE out of docker0) the fragments are gathered
    /// before conntrack and leave as the same pieces, in offset order, re-headed from the NATed datagram.</summary>
    [Fact]
    public void Conntrack_gathers_fragments_and_output_cuts_them_as_they_came()
    {
        var rig = new ScenarioRig("docker");
        const string c1 = "02:00:00:00:01:02", docker0 = "02:42:ac:11:00:01";
        var udp = Udp("172.17.0.2", 5000, "192.0.2.100", 53, 2500);
        var frags = Fragments(udp, 1200);
        foreach (int i in new[] { 2, 0, 1 }) rig.Inject("host", "veth1", Eth(docker0, c1, frags[i]));
        var host = rig.Ns("host");
        Assert.Equal(1, host.Mib[SnmpCounter.IpReasmOKs]);
        var tx = rig.Tx("host", "eth0").Where(f => BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == 0x0800).ToList();
        Assert.Equal(3, tx.Count);
        int offset = 0;
        for (int i = 0; i < 3; i++)
        {
            var p = IpOf(tx[i]);
            Assert.Equal(frags[i].Length, p.Length);
            ushort fo = BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(6));
            Assert.Equal(offset, (fo & 0x1FFF) << 3);
            Assert.Equal(i < 2 ? 0x2000 : 0, fo & 0xE000);
            Assert.Equal(A("192.0.2.1"), BinaryPrimitives.ReadUInt32BigEndian(p.AsSpan(12)));
            Assert.Equal(63, p[8]);
            Assert.True(Checksum.Verify(p.AsSpan(0, 20)));
            offset += p.Length - 20;
        }
        // The UDP checksum was fixed for the new source over the whole datagram.
        var joined = Join(tx);
        Assert.True(Checksum.Verify(joined.AsSpan(20), Checksum.PseudoHeaderV4(joined.AsSpan(12, 4), joined.AsSpan(16, 4), 17, joined.Length - 20)));
        Assert.Equal(1, host.Mib[SnmpCounter.IpFragOKs]);
        Assert.Equal(3, host.Mib[SnmpCounter.IpFragCreates]);
        // The datagram, and the far end's port unreachable coming back.
        Assert.Equal(2, host.Counters.Forwarded);
        Assert.True(host.Counters.Conserved);
    }

    // ---------------- the reassembly engine alone ----------------

    private static (NetStack Stack, Namespace Ns) Engine()
    {
        var ns = new Namespace("t");
        return (new NetStack([ns]), ns);
    }

    private static Skb SkbOf(NetStack stack, byte[] ip)
    {
        var skb = stack.SkbFrom(ip)!;
        skb.ResetNetworkHeader();
        return skb;
    }

    /// <summary>Any datagram, cut at any 8-byte boundaries, sent in any order with exact duplicates mixed in, comes back
    /// byte for byte (header apart from length, flags and checksum), as one skb with the pieces on its frag_list.</summary>
    [Fact]
    public void Random_fragmentation_and_order_reassembles_the_original_bytes()
    {
        Gen.Select(Gen.Int[9, 9000], Gen.Int[1, 200], Gen.Int[0, int.MaxValue], Gen.Int[0, 3]).Sample((size, unit, seed, dups) =>
        {
            var (stack, ns) = Engine();
            var ip = Udp("10.0.0.1", 1, "10.0.0.2", 2, size);
            var rng = new Random(seed);
            int data = ip.Length - 20;
            var pieces = new List<byte[]>();
            for (int off = 0; off < data;)
            {
                int len = Math.Min(data - off, 8 * rng.Next(8, unit + 8));
                pieces.Add(Piece(ip, off, len, more: off + len < data));
                off += len;
            }
            if (pieces.Count == 1) return; // not a fragment
            var order = pieces.OrderBy(_ => rng.Next()).ToList();
            // Duplicates of pieces already sent, all before the last piece: a duplicate after completion would open a
            // new queue (as in the kernel), which is another test.
            for (int d = 0; d < dups; d++)
            {
                int at = rng.Next(1, order.Count);
                order.Insert(at, order[rng.Next(at)]);
            }
            Skb? result = null;
            int complete = 0;
            foreach (var p in order)
            {
                var r = ns.Defrag.Defrag(stack, ns, null, SkbOf(stack, p), DefragUser.LocalDeliver, out var dg);
                if (r == DefragResult.Complete) { result = dg; complete++; }
            }
            Assert.Equal(1, complete);
            var bytes = new byte[result!.Len];
            Assert.True(result.CopyTo(bytes));
            Assert.True(result.Validate(out var problem), problem);
            Assert.Equal(ip.AsSpan(20).ToArray(), bytes.AsSpan(20).ToArray());
            Assert.Equal(ip.Length, BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(2)));
            Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(6)));
            Assert.True(Checksum.Verify(bytes.AsSpan(0, 20)));
            Assert.Equal(pieces.Count - 1, ns.Counters.FragMerged);
            Assert.Equal(dups, ns.Counters.Drops[DropReason.FragDuplicate]);
            Assert.Equal(0, ns.Counters.FragHeld);
            result.Free();
            Assert.Equal(0, ns.Defrag.QueueCount);
            Assert.Equal(0, ns.Defrag.Memory);
        }, iter: 200);
    }

    /// <summary>Steady state: reassembling datagrams and cutting them again on output (both the frag_list path and
    /// the copying path) allocates nothing per fragment.</summary>
    [Fact]
    public void Reassembly_and_refragmentation_allocate_nothing_per_fragment()
    {
        var (stack, ns) = Engine();
        var dev = new Device(ns, "d0", LinkKind.Get("veth"), 2) { Mtu = 1500 };
        var pieces = Fragments(Udp("10.0.0.1", 1, "10.0.0.2", 2, 3000), 1200);
        int sent = 0;
        DropReason Out(NetStack st, Namespace n, Skb skb, Device d, uint nh, Device? inDev)
        {
            sent++;
            skb.Free();
            return DropReason.None;
        }
        Ipv4Fragment.FrameOutput output = Out;
        void Round(int datagrams, int mtu)
        {
            dev.Mtu = mtu;
            for (int d = 0; d < datagrams; d++)
                foreach (var p in pieces)
                    if (ns.Defrag.Defrag(stack, ns, dev, SkbOf(stack, p), DefragUser.ConntrackIn, out var dg) == DefragResult.Complete)
                        Ipv4Fragment.DoFragment(stack, ns, dg!, dev, 0, null, output);
        }
        int datagrams = 0;
        foreach (int mtu in new[] { 1500, 700 })
        {
            Round(200, mtu);
            int rounds = Support.AllocationAssert.NothingPerOperation(() => Round(2000, mtu), 2000 * pieces.Count, $"fragments at MTU {mtu}");
            datagrams += 200 + 2000 * rounds;
        }
        Assert.Equal(datagrams, ns.Mib[SnmpCounter.IpFragOKs]);
        Assert.Equal(0, ns.Defrag.Memory);
        Assert.True(sent > 0);
    }

    [Fact]
    public void Reassembled_df_fragments_keep_df_and_frag_max_size()
    {
        var (stack, ns) = Engine();
        var ip = Udp("10.0.0.1", 1, "10.0.0.2", 2, 3000);
        var pieces = Fragments(ip, 1200, df: true);
        Skb? dg = null;
        foreach (var p in pieces) ns.Defrag.Defrag(stack, ns, null, SkbOf(stack, p), DefragUser.ConntrackIn, out dg);
        Assert.NotNull(dg);
        Assert.Equal(1220, dg!.FragMaxSize);
        Assert.True(dg.FragPmtu);
        Assert.Equal(0x4000, BinaryPrimitives.ReadUInt16BigEndian(NetStack.L3(dg)[6..]));
        dg.Free();
    }

    [Fact]
    public void Mixed_ecn_not_ect_and_ce_fails_reassembly()
    {
        var (stack, ns) = Engine();
        var ip = Udp("10.0.0.1", 1, "10.0.0.2", 2, 3000);
        var pieces = Fragments(ip, 1200);
        pieces[1][1] = 3; // CE
        pieces[1][10] = pieces[1][11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(pieces[1].AsSpan(10), Checksum.Compute(pieces[1].AsSpan(0, 20)));
        DefragResult last = default;
        foreach (var p in pieces) last = ns.Defrag.Defrag(stack, ns, null, SkbOf(stack, p), DefragUser.LocalDeliver, out _);
        Assert.Equal(DefragResult.Dropped, last);
        Assert.Equal(1, ns.Mib[SnmpCounter.IpReasmFails]);
        Assert.Equal(3, ns.Counters.Drops[DropReason.FragReasmFailed]);
        Assert.Equal(0, ns.Defrag.Memory);
    }
}
