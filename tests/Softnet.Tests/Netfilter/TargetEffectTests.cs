using System.Buffers.Binary;
using Softnet.Netfilter;
using Softnet.Packets;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;

namespace Softnet.Tests.Netfilter;

/// <summary>What the mangling and verdict targets do to packets: rewritten fields with checksums that verify by
/// recomputation, NFQUEUE without a listener, CT zones separating conntrack entries.</summary>
public class TargetEffectTests
{
    private static NetfilterTables Load(string table, params string[] rules)
        => IptablesSaveParser.Parse($"*{table}\n{string.Join('\n', rules)}\nCOMMIT\n", "t.rules");

    /// <summary>A TCP segment with the given options (padded to 32 bits) and payload, checksums valid, plus
    /// <paramref name="tailroom"/> spare bytes after the datagram.</summary>
    private static byte[] TcpWithOptions(byte flags, ReadOnlySpan<byte> options, int payload = 0, int tailroom = 0)
    {
        int optLen = (options.Length + 3) & ~3;
        int total = 20 + 20 + optLen + payload;
        var b = new byte[total + tailroom];
        b[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), (ushort)total);
        b[8] = 64;
        b[9] = 6;
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(12), A("10.0.0.1"));
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(16), A("10.0.1.2"));
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(10), Checksum.Compute(b.AsSpan(0, 20)));
        var t = b.AsSpan(20, total - 20);
        BinaryPrimitives.WriteUInt16BigEndian(t, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], 80);
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], 12345);
        t[12] = (byte)((20 + optLen) / 4 << 4);
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], 64240);
        options.CopyTo(t[20..]);
        for (int i = 0; i < payload; i++) t[20 + optLen + i] = (byte)('a' + i % 26);
        BinaryPrimitives.WriteUInt16BigEndian(t[16..], Checksum.Compute(t, Checksum.PseudoHeaderV4(b.AsSpan(12, 4), b.AsSpan(16, 4), 6, t.Length)));
        return b;
    }

    private static readonly byte[] SynOptions = { 2, 4, 0x05, 0xB4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7 };

    private static ushort? Mss(byte[] b)
    {
        int doff = (b[32] >> 4) * 4;
        for (int i = 40; i < 20 + doff;)
        {
            if (b[i] == 0) break;
            if (b[i] == 1) { i++; continue; }
            if (b[i] == 2) return BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(i + 2));
            i += b[i + 1];
        }
        return null;
    }

    private static byte[] Datagram(byte[] b) => b.AsSpan(0, BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(2))).ToArray();

    private static Verdict Forward(NetfilterTables t, byte[] pkt, ref PacketContext ctx)
        => t.Hook(HookPoint.Forward, ref ctx, pkt);

    [Fact]
    public void Tcpmss_set_lowers_the_option_and_updates_the_checksum_incrementally()
    {
        var t = Load("mangle", "-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400");
        var pkt = TcpWithOptions(0x02, SynOptions);
        var ctx = Ctx(pkt);
        Assert.Equal(Verdict.Accept, Forward(t, pkt, ref ctx));
        Assert.Equal((ushort)1400, Mss(pkt));
        AssertChecksumsValid(pkt);
        Assert.Equal(pkt.Length, ctx.Length);

        // Never raised: an MSS already below the value stays.
        var low = TcpWithOptions(0x02, new byte[] { 2, 4, 0x05, 0x00 });
        var before = (byte[])low.Clone();
        ctx = Ctx(low);
        Forward(t, low, ref ctx);
        Assert.Equal(before, low);
    }

    [Fact]
    public void Tcpmss_clamp_uses_the_smaller_of_the_route_mtus()
    {
        var t = Load("mangle", "-A FORWARD -p tcp -j TCPMSS --clamp-mss-to-pmtu");
        var pkt = TcpWithOptions(0x02, SynOptions);
        var ctx = Ctx(pkt);
        ctx.OutMtu = 1400;
        ctx.ReverseMtu = 1500;
        Assert.Equal(Verdict.Accept, Forward(t, pkt, ref ctx));
        Assert.Equal((ushort)1360, Mss(pkt));
        AssertChecksumsValid(pkt);

        pkt = TcpWithOptions(0x02, SynOptions);
        ctx = Ctx(pkt);
        ctx.OutMtu = 1500;
        ctx.ReverseMtu = 1280;
        Forward(t, pkt, ref ctx);
        Assert.Equal((ushort)1240, Mss(pkt));

        // No usable MTU (the kernel's "unknown or invalid path-MTU"): dropped.
        pkt = TcpWithOptions(0x02, SynOptions);
        ctx = Ctx(pkt);
        Assert.Equal(Verdict.Drop, Forward(t, pkt, ref ctx));
        Assert.Equal(DropReason.NetfilterDrop, ctx.DropReason);
    }

    [Fact]
    public void Tcpmss_inserts_the_option_capped_at_536_when_absent_and_there_is_no_data()
    {
        var t = Load("mangle", "-A FORWARD -p tcp -j TCPMSS --set-mss 1400");
        var pkt = TcpWithOptions(0x02, new byte[] { 1, 1, 4, 2 }, tailroom: 8);
        int len = BinaryPrimitives.ReadUInt16BigEndian(pkt.AsSpan(2));
        var ctx = Ctx(pkt);
        Assert.Equal(Verdict.Accept, Forward(t, pkt, ref ctx));
        Assert.Equal(len + 4, BinaryPrimitives.ReadUInt16BigEndian(pkt.AsSpan(2)));
        Assert.Equal(len + 4, ctx.Length);
        Assert.Equal(0x70, pkt[32] & 0xF0);
        Assert.Equal(new byte[] { 2, 4, 0x02, 0x18, 1, 1, 4, 2 }, pkt.AsSpan(40, 8).ToArray());
        AssertChecksumsValid(Datagram(pkt));

        // With data after the header the option cannot be added: untouched.
        var data = TcpWithOptions(0x18, ReadOnlySpan<byte>.Empty, payload: 10, tailroom: 8);
        var copy = (byte[])data.Clone();
        ctx = Ctx(data);
        Forward(t, data, ref ctx);
        Assert.Equal(copy, data);

        // No room after the datagram (the kernel would expand the head): dropped here.
        var tight = TcpWithOptions(0x02, ReadOnlySpan<byte>.Empty);
        ctx = Ctx(tight);
        Assert.Equal(Verdict.Drop, Forward(t, tight, ref ctx));
        Assert.Equal(DropReason.NetfilterTcpmssNoRoom, ctx.DropReason);
    }

    [Fact]
    public void Tcpmss_checksums_stay_valid_over_random_option_layouts()
    {
        var t = Load("mangle", "-A FORWARD -p tcp -j TCPMSS --set-mss 1000");
        var rng = new Random(7);
        for (int n = 0; n < 500; n++)
        {
            var opts = new List<byte>();
            int nops = rng.Next(0, 4);
            for (int i = 0; i < nops; i++) opts.Add(1);
            if (rng.Next(2) == 0) opts.AddRange(new byte[] { 4, 2 });
            if (rng.Next(3) != 0)
            {
                // The kernel updates the checksum as if the MSS value were 16-bit aligned (as every real SYN has it);
                // an MSS option at an odd offset would get a checksum the kernel gets wrong too.
                if ((opts.Count & 1) == 1) opts.Add(1);
                opts.AddRange(new byte[] { 2, 4, (byte)rng.Next(0, 256), (byte)rng.Next(0, 256) });
            }
            if (rng.Next(2) == 0) opts.AddRange(new byte[] { 3, 3, (byte)rng.Next(0, 15) });
            var pkt = TcpWithOptions(0x02, opts.ToArray(), payload: rng.Next(3) == 0 ? rng.Next(1, 50) : 0, tailroom: 4);
            var ctx = Ctx(pkt);
            ctx.IpSummed = CsumState.None;
            Assert.Equal(Verdict.Accept, Forward(t, pkt, ref ctx));
            AssertChecksumsValid(Datagram(pkt));
            var mss = Mss(pkt);
            if (mss != null) Assert.True(mss <= 1000 || opts.Count == 0);
        }
    }

    [Theory]
    [InlineData("--ttl-set 5", 64, 5)]
    [InlineData("--ttl-inc 10", 64, 74)]
    [InlineData("--ttl-inc 250", 64, 255)]
    [InlineData("--ttl-dec 10", 64, 54)]
    [InlineData("--ttl-dec 100", 64, 0)]
    public void Ttl_rewrites_with_the_header_checksum(string option, int before, int after)
    {
        var t = Load("mangle", "-A PREROUTING -j TTL " + option);
        var pkt = Udp("10.0.0.1", 1000, "10.0.0.2", 53);
        Assert.Equal(before, pkt[8]);
        var ctx = Ctx(pkt);
        Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PreRouting, ref ctx, pkt));
        Assert.Equal(after, pkt[8]);
        AssertChecksumsValid(pkt);
    }

    [Fact]
    public void Dscp_keeps_the_ecn_bits_and_tos_applies_value_and_mask()
    {
        var t = Load("mangle", "-A PREROUTING -j DSCP --set-dscp-class EF");
        var pkt = Udp("10.0.0.1", 1000, "10.0.0.2", 53);
        pkt[1] = 0x03;
        BinaryPrimitives.WriteUInt16BigEndian(pkt.AsSpan(10), 0);
        BinaryPrimitives.WriteUInt16BigEndian(pkt.AsSpan(10), Checksum.Compute(pkt.AsSpan(0, 20)));
        var ctx = Ctx(pkt);
        t.Hook(HookPoint.PreRouting, ref ctx, pkt);
        Assert.Equal(0x2E << 2 | 0x03, pkt[1]);
        AssertChecksumsValid(pkt);

        foreach (var (rule, tos, expect) in new[]
        {
            ("--set-tos 0x10", 0xE3, 0x10), ("--set-tos Minimize-Cost", 0xE3, 0xC2), ("--and-tos 0x0f", 0xE3, 0x03),
            ("--or-tos 0x0c", 0xE3, 0xEF), ("--xor-tos 0xff", 0xE3, 0x1C), ("--set-tos 0x02/0x0f", 0xE3, 0xE2),
        })
        {
            var tt = Load("mangle", "-A OUTPUT -j TOS " + rule);
            var p2 = Udp("10.0.0.1", 1000, "10.0.0.2", 53);
            p2[1] = (byte)tos;
            BinaryPrimitives.WriteUInt16BigEndian(p2.AsSpan(10), 0);
            BinaryPrimitives.WriteUInt16BigEndian(p2.AsSpan(10), Checksum.Compute(p2.AsSpan(0, 20)));
            var c2 = Ctx(p2);
            tt.Hook(HookPoint.LocalOut, ref c2, p2);
            Assert.Equal(expect, p2[1]);
            AssertChecksumsValid(p2);
        }
    }

    [Fact]
    public void Checksum_fill_completes_a_partial_checksum()
    {
        var t = Load("mangle", "-A POSTROUTING -p udp -j CHECKSUM --checksum-fill");
        var pkt = Udp("10.0.0.1", 1000, "10.0.0.2", 53, payload: 33);
        // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum only.
        uint pseudo = Checksum.PseudoHeaderV4(pkt.AsSpan(12, 4), pkt.AsSpan(16, 4), 17, pkt.Length - 20);
        BinaryPrimitives.WriteUInt16BigEndian(pkt.AsSpan(26), (ushort)pseudo);
        var ctx = Ctx(pkt);
        ctx.IpSummed = CsumState.Partial;
        t.Hook(HookPoint.PostRouting, ref ctx, pkt);
        Assert.Equal(CsumState.None, ctx.IpSummed);
        AssertChecksumsValid(pkt);

        // Not partial: left alone.
        BinaryPrimitives.WriteUInt16BigEndian(pkt.AsSpan(26), 0x1234);
        ctx = Ctx(pkt);
        t.Hook(HookPoint.PostRouting, ref ctx, pkt);
        Assert.Equal(0x1234, BinaryPrimitives.ReadUInt16BigEndian(pkt.AsSpan(26)));
    }

    [Fact]
    public void Nfqueue_without_listener_drops_unless_bypass_which_ends_the_table_only()
    {
        var t = IptablesSaveParser.Parse("""
            *mangle
            -A PREROUTING -p udp --dport 53 -j NFQUEUE --queue-num 3
            -A PREROUTING -p udp -j NFQUEUE --queue-balance 0:3 --queue-bypass
            -A PREROUTING -j MARK --set-mark 7
            COMMIT
            *nat
            -A PREROUTING -p udp -j DNAT --to-destination 10.9.9.9
            COMMIT
            """);
        var dns = Udp("10.0.0.1", 1000, "10.0.0.2", 53);
        var ctx = Ctx(dns);
        Assert.Equal(Verdict.Drop, t.Hook(HookPoint.PreRouting, ref ctx, dns));
        Assert.Equal(DropReason.NotSpecified, ctx.DropReason);
        Assert.Equal(1, t.QueueDropped);
        Assert.Equal(0, t.Conntrack.Count);

        var other = Udp("10.0.0.1", 1000, "10.0.0.2", 54);
        ctx = Ctx(other);
        Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PreRouting, ref ctx, other));
        Assert.Equal(1, t.QueueBypassed);
        // The rest of mangle is skipped (no mark); the next hook function (nat) still runs.
        Assert.Equal(0u, ctx.Mark);
        Assert.Equal(A("10.9.9.9"), ctx.Dst);
    }

    [Fact]
    public void Ct_zone_separates_conntrack_entries_and_notrack_untracks()
    {
        var t = IptablesSaveParser.Parse("""
            *raw
            -A PREROUTING -i veth1 -j CT --zone 1
            -A PREROUTING -i veth2 -j CT --zone 2
            -A PREROUTING -i veth4 -j CT --zone mark
            -A PREROUTING -i veth3 -j CT --notrack
            COMMIT
            """);
        long now = 1_000_000_000;
        void Send(string dev, uint mark = 0)
        {
            var p = Udp("10.0.0.1", 1000, "10.0.0.2", 53);
            var ctx = Ctx(p, now, inIf: dev);
            ctx.Mark = mark;
            Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PreRouting, ref ctx, p));
            Assert.Equal(Verdict.Accept, t.Hook(HookPoint.LocalIn, ref ctx, p));
        }
        Send("veth1");
        Send("veth2");
        Send("veth1");
        Send("veth0");
        Send("veth3");
        Send("veth4", 0x10002);
        // Zones 1, 2 and the default zone: three entries for one 5-tuple; zone "mark" takes the mark's low 16 bits (2).
        Assert.Equal(3, t.Conntrack.Count);
        var list = t.Conntrack.List(now);
        Assert.Contains("mark=0 zone=1 use=1", list);
        Assert.Contains("mark=0 zone=2 use=1", list);
        Assert.Contains("mark=0 use=1", list);
    }

    [Fact]
    public void Connmark_shifts_and_masks_as_revision_2()
    {
        var t = IptablesSaveParser.Parse("""
            *mangle
            -A PREROUTING -j CONNMARK --save-mark --mask 0xff00 --right-shift-mark 8
            -A PREROUTING -j CONNMARK --restore-mark --ctmask 0xff --nfmask 0xff0000 --left-shift-mark 16
            COMMIT
            """);
        var p = Udp("10.0.0.1", 1000, "10.0.0.2", 53);
        var ctx = Ctx(p, 1);
        ctx.Mark = 0xAB12CD00;
        Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PreRouting, ref ctx, p));
        // save: ct = (0 & ~0xff00) ^ ((0xAB12CD00 & 0xff00) >> 8) = 0xCD
        Assert.Equal(0xCDu, ctx.Ct!.Mark);
        // restore: mark = (mark & ~0xff0000) ^ ((0xCD & 0xff) << 16)
        Assert.Equal(0xABCDCD00u, ctx.Mark);
    }

    [Fact]
    public void Trace_marks_the_packet_and_nflog_counts()
    {
        var t = Load("raw", "-A PREROUTING -j TRACE", "-A PREROUTING -j NFLOG --nflog-group 2");
        var p = Udp("10.0.0.1", 1000, "10.0.0.2", 53);
        var ctx = Ctx(p);
        Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PreRouting, ref ctx, p));
        Assert.True(ctx.Trace);
        Assert.Equal(1, t.TraceCount);
        Assert.Equal(1, t.NflogCount);
    }
    [Fact]
    public void Targets_do_not_allocate_per_packet()
    {
        var t = IptablesSaveParser.Parse("""
            *raw
            -A PREROUTING -p udp -j CT --zone 3
            -A PREROUTING -j TRACE
            COMMIT
            *mangle
            -A PREROUTING -j TTL --ttl-dec 1
            -A PREROUTING -j DSCP --set-dscp 10
            -A PREROUTING -j TOS --xor-tos 0x01
            -A PREROUTING -j CONNMARK --restore-mark --left-shift-mark 1
            -A PREROUTING -j NFLOG --nflog-group 1 --nflog-prefix x
            -A PREROUTING -p udp --dport 9 -j NFQUEUE --queue-num 1
            -A PREROUTING -j NFQUEUE --queue-balance 1:4 --queue-bypass
            -A FORWARD -p tcp -j TCPMSS --clamp-mss-to-pmtu
            -A POSTROUTING -p tcp -j TCPMSS --set-mss 1000
            -A POSTROUTING -p udp -j CHECKSUM --checksum-fill
            COMMIT
            """);
        t.ConntrackEnabled = false;
        var pkts = new[] { Udp("10.0.0.1", 1, "10.0.0.2", 53), Udp("10.0.0.1", 1, "10.0.0.2", 9), TcpWithOptions(0x02, SynOptions, tailroom: 4) };
        void Once(int i)
        {
            var pkt = pkts[i % pkts.Length];
            var ctx = Ctx(pkt, i);
            ctx.OutMtu = 1500;
            ctx.IpSummed = (i & 1) == 0 ? CsumState.Partial : CsumState.None;
            if (t.Hook(HookPoint.PreRouting, ref ctx, pkt) == Verdict.Drop) return;
            t.Hook(HookPoint.Forward, ref ctx, pkt);
            t.Hook(HookPoint.PostRouting, ref ctx, pkt);
        }
        for (int i = 0; i < 300; i++) Once(i);
        // Rounds, not one exact zero: tiered compilation may allocate once on this thread mid-loop.
        Support.AllocationAssert.NothingPerOperation(() => { for (int i = 0; i < 3000; i++) Once(i); }, 3000, "packets");
        Assert.True(t.QueueDropped > 0 && t.QueueBypassed > 0 && t.NflogCount > 0 && t.TraceCount > 0);
    }
}
