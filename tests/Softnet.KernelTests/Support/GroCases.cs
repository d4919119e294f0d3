namespace Softnet.KernelTests.Support;

/// <summary>One GRO comparison case: bursts of frames (a burst = frames sharing one capture timestamp,
/// sent back to back and then flushed).</summary>
public sealed record GroCase(string Name, IReadOnlyList<IReadOnlyList<byte[]>> Bursts)
{
    public override string ToString() => Name;
}

/// <summary>
/// The GRO cases, modelled on the kernel's selftest tools/testing/selftests/net/gro.c (data, ack, flags, tcp,
/// ip, large, flush-id) plus cases it does not have (retransmits, reordering, more flows than MAX_GRO_SKBS,
/// VLAN, bursts split across polls). Every case exists for IPv4 ("v4/...") and, where it applies, IPv6 ("v6/...").
/// </summary>
public static class GroCases
{
    private const int Len = 100;

    /// <summary>Case names as xunit MemberData rows (the name is the serializable key).</summary>
    public static IEnumerable<object[]> Names() => All().Select(c => new object[] { c.Name });

    public static GroCase ByName(string name) => All().First(c => c.Name == name);

    /// <summary>A case of <see cref="All"/> or, with <paramref name="jumbo"/>, of <see cref="Jumbo"/>.</summary>
    public static GroCase ByName(string name, bool jumbo) => (jumbo ? Jumbo() : All()).First(c => c.Name == name);

    public static IEnumerable<GroCase> All()
    {
        foreach (bool v6 in new[] { false, true })
            foreach (var c in Family(v6))
                yield return c;
        foreach (var c in Ipv4Only())
            yield return c;
        foreach (var c in Ipv6Only())
            yield return c;
        foreach (var c in Mixed())
            yield return c;
    }

    /// <summary>Segment i of the default flow: seq = 100 + offset, 100 bytes of payload.</summary>
    private static TcpFrame Seg(bool v6, int i) => new() { V6 = v6, Seq = (uint)(100 + i * Len) };

    /// <summary>Consecutive segments with the given payload lengths.</summary>
    private static List<TcpFrame> Data(bool v6, params int[] lengths)
    {
        var list = new List<TcpFrame>();
        uint seq = 100;
        foreach (int l in lengths)
        {
            list.Add(new TcpFrame { V6 = v6, Seq = seq, PayloadLength = l });
            seq += (uint)l;
        }
        return list;
    }

    private static GroCase One(string name, IEnumerable<TcpFrame> frames)
        => new(name, [frames.Select(f => f.Build()).ToList()]);

    private static GroCase Many(string name, params IEnumerable<TcpFrame>[] bursts)
        => new(name, bursts.Select(b => (IReadOnlyList<byte[]>)b.Select(f => f.Build()).ToList()).ToList());

    /// <summary>Five segments where the middle one (index 2) is changed by <paramref name="change"/>.</summary>
    private static IEnumerable<TcpFrame> MiddleChanged(bool v6, Func<TcpFrame, TcpFrame> change)
        => Enumerable.Range(0, 5).Select(i => i == 2 ? change(Seg(v6, i)) : Seg(v6, i));

    private static IEnumerable<GroCase> Family(bool v6)
    {
        string p = v6 ? "v6/" : "v4/";
        int ipHdr = v6 ? 40 : 20;

        // data: same size, smaller last, smaller first.
        yield return One(p + "data_same_2", Data(v6, Len, Len));
        yield return One(p + "data_same_4", Data(v6, Len, Len, Len, Len));
        yield return One(p + "data_large_then_small", Data(v6, Len, Len / 2));
        yield return One(p + "data_small_then_large", Data(v6, Len / 2, Len));
        yield return One(p + "data_small_in_middle", Data(v6, Len, Len / 2, Len));
        yield return One(p + "data_single", Data(v6, Len));
        yield return One(p + "data_mss_1448_x8", Data(v6, Enumerable.Repeat(1448, 8).ToArray()));

        // ack: pure ACKs (one duplicated) do not coalesce; an ACK number change ends a merge.
        yield return One(p + "ack_pure", [
            Seg(v6, 0) with { PayloadLength = 0 },
            Seg(v6, 0) with { PayloadLength = 0 },
            Seg(v6, 0) with { PayloadLength = 0, Ack = 101 }]);
        yield return One(p + "ack_changes", [Seg(v6, 0), Seg(v6, 1), Seg(v6, 2) with { Ack = 200 }, Seg(v6, 3) with { Ack = 200 }]);
        yield return One(p + "ack_pure_then_data", [Seg(v6, 0) with { PayloadLength = 0 }, Seg(v6, 0), Seg(v6, 1)]);

        // flags: the selftest's flag segment sits in the middle; PSH carries data, SYN/RST/URG carry none.
        yield return One(p + "flags_psh", MiddleChanged(v6, f => f with { Flags = TcpFlags.Ack | TcpFlags.Psh }));
        yield return One(p + "flags_syn", MiddleChanged(v6, f => f with { Flags = TcpFlags.Ack | TcpFlags.Syn, PayloadLength = 0 }));
        yield return One(p + "flags_rst", MiddleChanged(v6, f => f with { Flags = TcpFlags.Ack | TcpFlags.Rst, PayloadLength = 0 }));
        yield return One(p + "flags_urg", MiddleChanged(v6, f => f with { Flags = TcpFlags.Ack | TcpFlags.Urg, PayloadLength = 0 }));
        yield return One(p + "flags_urg_data", MiddleChanged(v6, f => f with { Flags = TcpFlags.Ack | TcpFlags.Urg, Urgent = 10 }));
        yield return One(p + "flags_fin", MiddleChanged(v6, f => f with { Flags = TcpFlags.Ack | TcpFlags.Fin }));
        yield return One(p + "flags_cwr", MiddleChanged(v6, f => f with { Flags = TcpFlags.Ack | TcpFlags.Cwr }));
        yield return One(p + "flags_ece", MiddleChanged(v6, f => f with { Flags = TcpFlags.Ack | TcpFlags.Ece }));
        yield return One(p + "flags_syn_data", MiddleChanged(v6, f => f with { Flags = TcpFlags.Ack | TcpFlags.Syn }));
        yield return One(p + "flags_psh_first", Enumerable.Range(0, 3).Select(i => i == 0 ? Seg(v6, i) with { Flags = TcpFlags.Ack | TcpFlags.Psh } : Seg(v6, i)));
        yield return One(p + "flags_no_ack", Enumerable.Range(0, 3).Select(i => Seg(v6, i) with { Flags = 0 }));

        // tcp: checksum, sequence, window, options.
        yield return One(p + "tcp_bad_checksum_second", [Seg(v6, 0), Seg(v6, 1) with { TcpChecksumDelta = 0xFFFF }]);
        yield return One(p + "tcp_bad_checksum_middle", MiddleChanged(v6, f => f with { TcpChecksumDelta = 1 }));
        yield return One(p + "tcp_bad_checksum_first", [Seg(v6, 0) with { TcpChecksumDelta = 1 }, Seg(v6, 1), Seg(v6, 2)]);
        yield return One(p + "tcp_seq_gap", [Seg(v6, 0), Seg(v6, 1) with { Seq = 100 + Len + 1 }]);
        yield return One(p + "tcp_seq_retransmit", [Seg(v6, 0), Seg(v6, 1), Seg(v6, 1), Seg(v6, 2)]);
        yield return One(p + "tcp_seq_reordered", [Seg(v6, 0), Seg(v6, 2), Seg(v6, 1), Seg(v6, 3)]);
        yield return One(p + "tcp_window_changes", [Seg(v6, 0), Seg(v6, 1) with { Window = 1000 }, Seg(v6, 2) with { Window = 2000 }]);
        yield return One(p + "tcp_opt_ts_same", Enumerable.Range(0, 3).Select(i => Seg(v6, i) with { TcpOptions = TcpOpt.Ts(0) }));
        yield return One(p + "tcp_opt_ts_changed", [
            Seg(v6, 0) with { TcpOptions = TcpOpt.Ts(0) },
            Seg(v6, 1) with { TcpOptions = TcpOpt.Ts(0) },
            Seg(v6, 2) with { TcpOptions = TcpOpt.Ts(100) },
            Seg(v6, 3) with { TcpOptions = TcpOpt.Ts(100, 0, 1) },
            Seg(v6, 4) with { TcpOptions = TcpOpt.Ts(100, 0, 2) }]);
        yield return One(p + "tcp_opt_tsecr_changed", [
            Seg(v6, 0) with { TcpOptions = TcpOpt.Ts(7, 1) },
            Seg(v6, 1) with { TcpOptions = TcpOpt.Ts(7, 1) },
            Seg(v6, 2) with { TcpOptions = TcpOpt.Ts(7, 2) }]);
        yield return One(p + "tcp_opt_different", [
            Seg(v6, 0) with { TcpOptions = TcpOpt.Ts(0) },
            Seg(v6, 1) with { TcpOptions = TcpOpt.Ts(0) },
            Seg(v6, 2) with { TcpOptions = TcpOpt.Wscale() }]);
        yield return One(p + "tcp_opt_then_none", [
            Seg(v6, 0) with { TcpOptions = TcpOpt.Ts(0) },
            Seg(v6, 1)]);
        yield return One(p + "tcp_opt_none_then_opt", [
            Seg(v6, 0),
            Seg(v6, 1) with { TcpOptions = TcpOpt.MssOpt(1448) }]);

        // ip: TOS, ECN, TTL/hop limit.
        yield return One(p + "ip_tos_changed", [Seg(v6, 0), Seg(v6, 1) with { Tos = v6 ? (byte)0xF0 : (byte)1 }]);
        yield return One(p + "ip_ecn_changed", [Seg(v6, 0), Seg(v6, 1) with { Tos = 0x02 }]);
        yield return One(p + "ip_ecn_ce_changed", [Seg(v6, 0) with { Tos = 0x02 }, Seg(v6, 1) with { Tos = 0x03 }, Seg(v6, 2) with { Tos = 0x02 }]);
        yield return One(p + "ip_ttl_changed", [Seg(v6, 0), Seg(v6, 1) with { Ttl = 7 }]);
        yield return One(p + "ip_tos_same_nonzero", Enumerable.Range(0, 3).Select(i => Seg(v6, i) with { Tos = 0x28 }));

        // large: a flow reaching the 64 KB limit; the selftest's "large_max" (fits) and "large_rem" (one byte over).
        int maxPayload = 65535 - ipHdr - 20;
        int full = maxPayload / 1448;
        int rem = maxPayload % 1448;
        yield return One(p + "large_64k", Data(v6, Enumerable.Repeat(1448, 46).ToArray()));
        yield return One(p + "large_max", Data(v6, [.. Enumerable.Repeat(1448, full), rem, rem]));
        yield return One(p + "large_rem", Data(v6, [.. Enumerable.Repeat(1448, full), rem + 1, rem + 1]));

        // bursts: the same flow in two bursts is never merged across them.
        yield return Many(p + "bursts_same_flow_two", [Seg(v6, 0), Seg(v6, 1)], [Seg(v6, 2), Seg(v6, 3)]);
        yield return Many(p + "bursts_three_mixed", [Seg(v6, 0)], [Seg(v6, 1), Seg(v6, 2)], [Seg(v6, 3) with { Flags = TcpFlags.Ack | TcpFlags.Psh }, Seg(v6, 4)]);

        // flows: interleaved flows, the oldest-first flush, and more flows than the 8 GRO can hold.
        yield return One(p + "flows_2_interleaved", Interleaved(v6, 2, 3));
        yield return One(p + "flows_oldest_first", [Flow(v6, 2, 0), Flow(v6, 1, 0), Flow(v6, 1, 1), Flow(v6, 2, 1), Flow(v6, 1, 2)]);
        yield return One(p + "flows_8_interleaved", Interleaved(v6, 8, 3));
        yield return One(p + "flows_9_interleaved", Interleaved(v6, 9, 3));
        yield return One(p + "flows_12_interleaved", Interleaved(v6, 12, 2));
        yield return One(p + "flows_10_sequential", Enumerable.Range(0, 10).SelectMany(f => Enumerable.Range(0, 3).Select(i => Flow(v6, f, i))));
        yield return One(p + "flows_by_address", Enumerable.Range(0, 3).SelectMany(i => Enumerable.Range(0, 3).Select(f => Seg(v6, i) with
        {
            SrcIp = v6 ? [0xfd, 0xaa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, (byte)f] : [192, 168, 2, (byte)(10 + f)],
        })));

        // vlan: tagged frames (this kernel has no 802.1Q GRO).
        yield return One(p + "vlan_same_flow", Enumerable.Range(0, 3).Select(i => Seg(v6, i) with { Vlans = [5] }));
        yield return One(p + "vlan_tagged_and_untagged", [Seg(v6, 0), Seg(v6, 1) with { Vlans = [5] }, Seg(v6, 2) with { Vlans = [5] }, Seg(v6, 3)]);
    }

    private static TcpFrame Flow(bool v6, int flow, int i)
        => Seg(v6, i) with { SrcPort = (ushort)(1500 + flow), PayloadFill = (byte)('a' + flow % 26) };

    private static IEnumerable<TcpFrame> Interleaved(bool v6, int flows, int segs)
        => Enumerable.Range(0, segs).SelectMany(i => Enumerable.Range(0, flows).Select(f => Flow(v6, f, i)));

    private static IEnumerable<GroCase> Ipv4Only()
    {
        const bool v4 = false;
        // ip options and fragments (selftest: ip_opt, fragment4).
        yield return One("v4/ip_options_middle", [Seg(v4, 0), Seg(v4, 1) with { Ipv4Options = TcpOpt.Ipv4Timestamp() }, Seg(v4, 2)]);
        yield return One("v4/ip_options_all", Enumerable.Range(0, 3).Select(i => Seg(v4, i) with { Ipv4Options = TcpOpt.Ipv4Timestamp() }));
        yield return One("v4/ip_fragment_mf", [Seg(v4, 0), Seg(v4, 1) with { MoreFragments = true }]);
        yield return One("v4/ip_fragment_offset", [Seg(v4, 0), Seg(v4, 1) with { FragmentOffset = 16, DontFragment = false }]);
        yield return One("v4/ip_bad_header_checksum", [Seg(v4, 0), Seg(v4, 1) with { IpChecksumDelta = 1 }, Seg(v4, 2)]);

        // IP ID patterns (selftest flush_id cases 0-5), and longer runs.
        TcpFrame Id(int i, ushort id, bool df) => Seg(v4, i) with { IpId = id, DontFragment = df };
        yield return One("v4/ipid_df_incrementing", [Id(0, 8, true), Id(1, 9, true)]);
        yield return One("v4/ipid_df_fixed", [Id(0, 8, true), Id(1, 8, true)]);
        yield return One("v4/ipid_nodf_incrementing", [Id(0, 8, false), Id(1, 9, false)]);
        yield return One("v4/ipid_nodf_fixed", [Id(0, 8, false), Id(1, 8, false)]);
        yield return One("v4/ipid_df_inc_inc_fixed", [Id(0, 8, true), Id(1, 9, true), Id(2, 9, true)]);
        yield return One("v4/ipid_df_fixed_fixed_inc", [Id(0, 8, true), Id(1, 8, true), Id(2, 9, true)]);
        yield return One("v4/ipid_nodf_jump", [Id(0, 8, false), Id(1, 9, false), Id(2, 20, false)]);
        yield return One("v4/ipid_df_jump", [Id(0, 8, true), Id(1, 9, true), Id(2, 20, true)]);
        yield return One("v4/ipid_df_wrap", [Id(0, 65534, true), Id(1, 65535, true), Id(2, 0, true), Id(3, 1, true)]);
        yield return One("v4/ipid_nodf_wrap", [Id(0, 65534, false), Id(1, 65535, false), Id(2, 0, false)]);
        yield return One("v4/ipid_df_mixed", [Id(0, 8, true), Id(1, 9, false), Id(2, 10, true)]);
    }

    private static IEnumerable<GroCase> Ipv6Only()
    {
        const bool v6 = true;
        // flow label and extension headers (selftest: ipv6 fragment, hbh ext_same / ext_diff).
        yield return One("v6/ip_flowlabel_changed", [Seg(v6, 0) with { FlowLabel = 1 }, Seg(v6, 1) with { FlowLabel = 2 }]);
        yield return One("v6/ip_flowlabel_same", Enumerable.Range(0, 3).Select(i => Seg(v6, i) with { FlowLabel = 0x12345 }));
        yield return One("v6/ip_fragment", [Seg(v6, 0), Seg(v6, 1), Seg(v6, 2) with { ExtHeaders = [Ipv6Ext.Frag(0, true, 7)] }, Seg(v6, 3)]);
        yield return One("v6/ip_fragment_all", Enumerable.Range(0, 3).Select(i => Seg(v6, i) with { ExtHeaders = [Ipv6Ext.Frag(0, false, 7)] }));
        yield return One("v6/ip_ext_hbh_same", Enumerable.Range(0, 3).Select(i => Seg(v6, i) with { ExtHeaders = [Ipv6Ext.Options(Ipv6Ext.HopByHop, 0x00)] }));
        yield return One("v6/ip_ext_hbh_diff", [
            Seg(v6, 0) with { ExtHeaders = [Ipv6Ext.Options(Ipv6Ext.HopByHop, 0x00)] },
            Seg(v6, 1) with { ExtHeaders = [Ipv6Ext.Options(Ipv6Ext.HopByHop, 0x11)] }]);
        yield return One("v6/ip_ext_dest_same", Enumerable.Range(0, 3).Select(i => Seg(v6, i) with { ExtHeaders = [Ipv6Ext.Options(Ipv6Ext.DestOptions, 0x00)] }));
        yield return One("v6/ip_ext_then_none", [Seg(v6, 0) with { ExtHeaders = [Ipv6Ext.Options(Ipv6Ext.HopByHop, 0x00)] }, Seg(v6, 1)]);
        yield return One("v6/ip_hoplimit_changed", [Seg(v6, 0), Seg(v6, 1) with { Ttl = 64 }, Seg(v6, 2) with { Ttl = 64 }]);
    }

    /// <summary>The MTU of the jumbo cases, set on both veth ends.</summary>
    public const int JumboMtu = KernelGro.VethMtu;

    /// <summary>Jumbo cases: TCP segments filling a 9000-byte MTU (MSS 8948 with timestamps over IPv4, 8928 over
    /// IPv6), as case names for xunit.</summary>
    public static IEnumerable<object[]> JumboNames() => Jumbo().Select(c => new object[] { c.Name });

    /// <summary>Jumbo-frame cases (frames up to 9014 bytes), run on the same veth pair with MTU 9000: how many
    /// 9000-byte segments the 64 KB limit lets GRO merge, the limit's edge, short and long segments, flows.</summary>
    public static IEnumerable<GroCase> Jumbo()
    {
        foreach (bool v6 in new[] { false, true })
        {
            string p = v6 ? "jumbo/v6/" : "jumbo/v4/";
            int ipHdr = v6 ? 40 : 20;
            int mssTs = JumboMtu - ipHdr - 32, mss = JumboMtu - ipHdr - 20;
            IEnumerable<TcpFrame> Ts(IEnumerable<TcpFrame> f) => f.Select(x => x with { TcpOptions = TcpOpt.Ts(1, 2) });
            yield return One(p + "mss_ts_x16", Ts(Data(v6, Enumerable.Repeat(mssTs, 16).ToArray())));
            yield return One(p + "mss_x9", Data(v6, Enumerable.Repeat(mss, 9).ToArray()));
            yield return One(p + "short_last", Ts(Data(v6, [mssTs, mssTs, mssTs, 1000])));
            yield return One(p + "short_first", Ts(Data(v6, [4000, mssTs, mssTs])));
            yield return One(p + "small_then_jumbo", Data(v6, [1448, 1448, mss, 1448]));
            // The 64 KB edge: as "large_max"/"large_rem", with 9000-byte segments.
            int maxPayload = 65535 - ipHdr - 20;
            int full = maxPayload / mss, rem = maxPayload % mss;
            yield return One(p + "large_max", Data(v6, [.. Enumerable.Repeat(mss, full), rem, rem]));
            yield return One(p + "large_rem", Data(v6, [.. Enumerable.Repeat(mss, full), rem + 1, rem + 1]));
            yield return One(p + "flows_3_interleaved", Enumerable.Range(0, 8).SelectMany(i => Enumerable.Range(0, 3).Select(f =>
                new TcpFrame { V6 = v6, Seq = (uint)(100 + i * mss), PayloadLength = mss, SrcPort = (ushort)(1500 + f), PayloadFill = (byte)('a' + f) })));
        }
    }

    private static IEnumerable<GroCase> Mixed()
    {
        // IPv4 and IPv6 flows interleaved in one burst, and a VLAN flow between them.
        yield return One("mixed/v4_v6_interleaved", Enumerable.Range(0, 3).SelectMany(i => new[] { Seg(false, i), Seg(true, i) }));
        yield return One("mixed/v4_vlan_v6", Enumerable.Range(0, 3).SelectMany(i => new[] { Seg(false, i), Seg(false, i) with { Vlans = [7] }, Seg(true, i) }));
    }
}
