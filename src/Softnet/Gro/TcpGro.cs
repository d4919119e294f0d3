using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Softnet.Packets;

namespace Softnet.Gro;

/// <summary>
/// tcp4_gro_receive / tcp6_gro_receive / tcp_gro_receive and their completions (net/ipv4/tcp_offload.c,
/// net/ipv6/tcpv6_offload.c), plus the pure-ACK coalescing of <see cref="GroMode.Ack"/>.
/// <para>A segment merges into the held skb of its flow when: every flag (CWR included, as of 6.18), the data offset
/// and the window equal the held header's (FIN and PSH excepted); the ACK number and the options are identical;
/// the IP layer agrees (<see cref="Ipv4Gro.NetworkFlush"/>, <see cref="Ipv6Gro.NetworkFlush"/>); the payload is
/// 1..MSS bytes, MSS being the held skb's first payload size; the sequence number continues the held bytes;
/// and the result stays under gro_max_size. FIN/PSH of merged segments are OR-ed into the held header. A
/// segment shorter than the MSS, or carrying URG/PSH/RST/SYN/FIN, completes the flow at once (merged if it
/// could be). Pure ACKs (no payload) never merge.</para>
/// </summary>
public static class TcpGro
{
    internal const uint FlagCwr = 0x00800000, FlagEce = 0x00400000, FlagUrg = 0x00200000, FlagAck = 0x00100000,
        FlagPsh = 0x00080000, FlagRst = 0x00040000, FlagSyn = 0x00020000, FlagFin = 0x00010000;
    private const uint FlagBits = 0x00FF0000, WindowBits = 0x0000FFFF;

    internal static Skb? Receive4(GroEngine e, GroBucket bucket, Skb skb)
    {
        if (skb.Gro.Flush == 0)
        {
            uint pseudo = 0;
            if (GroEngine.ChecksumNeeded(skb, false, 0)) pseudo = GroEngine.PseudoV4(skb, 6);
            if (GroEngine.ChecksumBad(skb, pseudo, false, 0)) return Flush(e, skb, GroNormalReason.BadChecksum);
        }
        int thoff = skb.Gro.DataOffset;
        if (!PullHeader(skb)) return Flush(e, skb, GroNormalReason.Truncated);
        return Receive(e, bucket, skb, thoff);
    }

    internal static Skb? Receive6(GroEngine e, GroBucket bucket, Skb skb)
    {
        if (skb.Gro.Flush == 0)
        {
            uint pseudo = 0;
            if (GroEngine.ChecksumNeeded(skb, false, 0))
            {
                ReadOnlySpan<byte> iph = skb.LinearData.Slice(skb.Gro.InnermostNetworkOffset, 40);
                pseudo = Checksum.PseudoHeaderV6(iph.Slice(8, 16), iph.Slice(24, 16), 6, GroEngine.GroLen(skb));
            }
            if (GroEngine.ChecksumBad(skb, pseudo, false, 0)) return Flush(e, skb, GroNormalReason.BadChecksum);
        }
        int thoff = skb.Gro.DataOffset;
        if (!PullHeader(skb)) return Flush(e, skb, GroNormalReason.Truncated);
        return Receive(e, bucket, skb, thoff);
    }

    private static Skb? Flush(GroEngine e, Skb skb, GroNormalReason reason)
    {
        e.NoteNormal(reason);
        skb.Gro.Flush = 1;
        return null;
    }

    /// <summary>tcp_gro_pull_header: make the whole TCP header linear and step over it.</summary>
    private static unsafe bool PullHeader(Skb skb)
    {
        int off = skb.Gro.DataOffset;
        if (!GroEngine.MayPull(skb, off + 20)) return false;
        int thlen = (skb.DataAddress[off + 12] >> 4) * 4;
        if (thlen < 20 || !GroEngine.MayPull(skb, off + thlen)) return false;
        skb.Gro.DataOffset += thlen;
        return true;
    }

    /// <summary>tcp_gro_lookup: the first held skb of the same flow with the same ports.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Skb? Lookup(GroBucket bucket, byte* th)
    {
        uint ports = Unsafe.ReadUnaligned<uint>(th);
        for (Skb? p = bucket.Head; p != null; p = p.Next)
        {
            if (!p.Gro.SameFlow) continue;
            if (Unsafe.ReadUnaligned<uint>(p.HeadAddress + p.TransportHeader) != ports)
            {
                p.Gro.SameFlow = false;
                continue;
            }
            return p;
        }
        return null;
    }

    /// <summary>The options of two headers of the same length are byte-identical. The common 12 bytes of
    /// NOP, NOP, timestamps as two loads; other lengths as a block compare.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe bool OptionsEqual(byte* th, byte* th2, int thlen)
    {
        if (thlen == 32)
        {
            ulong a = GroEngine.Raw64(th + 20) ^ GroEngine.Raw64(th2 + 20);
            uint b = Unsafe.ReadUnaligned<uint>(th + 28) ^ Unsafe.ReadUnaligned<uint>(th2 + 28);
            return (a | b) == 0;
        }
        return new ReadOnlySpan<byte>(th + 20, thlen - 20).SequenceEqual(new ReadOnlySpan<byte>(th2 + 20, thlen - 20));
    }

    private static ReadOnlySpan<byte> NetworkHeader(Skb s) => s.LinearData.Slice(s.Gro.InnermostNetworkOffset);

    /// <summary>gro_receive_network_flush: the first IP header, then, for a flow that came through a UDP tunnel, the
    /// inner one (both at the held skb's offsets; the new skb came down the same headers).</summary>
    private static int NetworkFlush(GroEngine e, Skb skb, Skb p, out GroFlushReason reason)
    {
        int flush = LayerFlush(e, skb, p, p.Gro.NetworkOffset0, false, out reason);
        if (p.Gro.EncapMark != 0)
        {
            int inner = LayerFlush(e, skb, p, p.Gro.NetworkOffset1, true, out GroFlushReason innerReason);
            if (flush == 0) reason = innerReason;
            flush |= inner;
        }
        return flush;
    }

    private static unsafe int LayerFlush(GroEngine e, Skb skb, Skb p, int off, bool inner, out GroFlushReason reason)
    {
        byte* nh = skb.DataAddress + off;
        if ((nh[0] >> 4) == 6)
        {
            reason = GroFlushReason.TtlTos;
            return Ipv6Gro.NetworkFlush(skb.LinearData.Slice(off), p.LinearData.Slice(off));
        }
        return Ipv4Gro.NetworkFlush(nh, p.DataAddress + off, p, e.FixedIdRequiresDf, inner, out reason);
    }

    /// <summary>tcp_gro_receive.</summary>
    private static unsafe Skb? Receive(GroEngine e, GroBucket bucket, Skb skb, int thoff)
    {
        // PullHeader made the whole header linear: thoff .. DataOffset.
        byte* th = skb.DataAddress + thoff;
        int thlen = skb.Gro.DataOffset - thoff;
        int len = GroEngine.GroLen(skb);
        uint flags = GroEngine.Be32(th + 12);
        Skb? pp = null;
        uint mss = 1;
        bool flush;

        if (e.Mode == GroMode.Ack && len == 0 && (flags & FlagBits) == FlagAck && skb.Gro.Flush == 0 && !HasSack(new ReadOnlySpan<byte>(th, thlen)))
        {
            Skb? held = Lookup(bucket, th);
            if (held is null || held.Gro.PureAck) return CoalesceAck(e, skb, held, new ReadOnlySpan<byte>(th, thlen));
        }

        Skb? p = Lookup(bucket, th);
        if (p != null)
        {
            // The held skb's header was made linear when it arrived. Its data offset is among the compared
            // flags; when it differs, the options compare still reads within the held skb's head buffer.
            byte* th2 = p.HeadAddress + p.TransportHeader;
            uint flags2 = GroEngine.Be32(th2 + 12);
            GroFlushReason reason = GroFlushReason.PollEnd;
            // Since the AccECN work (Linux 6.18) CWR is compared like any other flag: a CWR segment neither
            // joins a run without CWR nor lets one join it, instead of always forcing a flush.
            uint diff = (flags ^ flags2) & ~(FlagFin | FlagPsh);
            if (diff != 0) reason = (diff & 0xFFFF0000) != 0 ? ((diff & 0xF0000000) != 0 ? GroFlushReason.OptionsDiffer : GroFlushReason.TcpFlags) : GroFlushReason.AckChanged;
            uint bad = diff;
            uint ackDiff = Unsafe.ReadUnaligned<uint>(th + 8) ^ Unsafe.ReadUnaligned<uint>(th2 + 8);
            if (ackDiff != 0 && bad == 0) reason = GroFlushReason.AckChanged;
            bad |= ackDiff;
            // The options, compared word by word in the kernel; one block compare here.
            if (thlen > 20 && (p.TransportHeader + thlen > p.HeadBuffer.Length || !OptionsEqual(th, th2, thlen)))
            {
                if (bad == 0) reason = GroFlushReason.OptionsDiffer;
                bad |= 1;
            }
            int net = NetworkFlush(e, skb, p, out GroFlushReason netReason);
            if (net != 0 && bad == 0) reason = netReason;
            bad |= (uint)net;

            mss = (uint)p.GsoSize;
            // A GSO skb (hardware-GRO aggregate) merges only with the held flow's own segment size; a single
            // segment must not be longer than it.
            if (skb.GsoSize != 0 ? (uint)skb.GsoSize != mss : (uint)(len - 1) >= mss)
            {
                if (bad == 0) reason = GroFlushReason.MssExceeded;
                bad |= 1;
            }
            uint seqDiff = (GroEngine.Be32(th2 + 4) + (uint)GroEngine.GroLen(p)) ^ GroEngine.Be32(th + 4);
            if (seqDiff != 0 && bad == 0) reason = GroFlushReason.SeqGap;
            bad |= seqDiff;

            if (bad != 0)
            {
                mss = 1;
                e.NoteFlush(reason);
            }
            else if (!GroReceive(e, p, skb))
            {
                mss = 1;
                e.NoteFlush(skb.Gro.Flush != 0 ? GroFlushReason.SkbFlush : GroFlushReason.SizeLimit);
            }
            else
            {
                // The merged packet keeps the first header; FIN and PSH of later segments are carried over.
                th2[13] |= (byte)((flags & (FlagFin | FlagPsh)) >> 16);
            }
        }

        // out_check_final: a GSO skb ends the flow unless it is whole segments; a single one when short.
        flush = skb.GsoSize != 0 ? len != skb.Gro.Count * skb.GsoSize : (uint)len < mss;
        bool final = (flags & (FlagUrg | FlagPsh | FlagRst | FlagSyn | FlagFin)) != 0;
        flush |= final;
        if (p != null && (!skb.Gro.SameFlow || flush))
        {
            pp = p;
            if (skb.Gro.SameFlow) e.NoteFlush(final ? GroFlushReason.PushFlags : GroFlushReason.ShortSegment);
        }
        if (flush)
        {
            skb.Gro.Flush |= 1;
            e.NoteNormal(GroNormalReason.TcpFinal);
        }
        return pp;
    }

    /// <summary>
    /// Pure-ACK variant (seed 002): a pure ACK (no payload, only the ACK flag, no SACK blocks) with no held
    /// skb of its flow is held itself. A later one whose ACK number is strictly newer and whose IP header
    /// agrees (TTL/TOS/traffic class/hop limit) replaces it, the held count growing by one, and only the latest
    /// is delivered. A duplicate or older ACK (which fast retransmit and reordering detection must see) ends
    /// the run: the held ACK is completed first, then this one passes up unmerged.
    /// </summary>
    private static Skb? CoalesceAck(GroEngine e, Skb skb, Skb? held, ReadOnlySpan<byte> th)
    {
        if (held is null)
        {
            skb.Gro.PureAck = true;
            return null;
        }
        ReadOnlySpan<byte> th2 = held.HeadBuffer.Slice(held.TransportHeader);
        int newer = (int)(GroEngine.Be32(th, 8) - GroEngine.Be32(th2, 8));
        bool sameHeader = (GroEngine.Be32(th, 12) & 0xF0000000) == (GroEngine.Be32(th2, 12) & 0xF0000000);
        ReadOnlySpan<byte> nh = NetworkHeader(skb), nh2 = NetworkHeader(held);
        bool ipSame = (nh[0] >> 4) == 6 ? Ipv6Gro.NetworkFlush(nh, nh2) == 0 : nh[1] == nh2[1] && nh[8] == nh2[8];
        if (newer > 0 && sameHeader && ipSame)
        {
            skb.Gro.PureAck = true;
            e.AckReplace = held;
            return null;
        }
        e.NoteFlush(GroFlushReason.AckRun);
        e.NoteNormal(GroNormalReason.TcpFinal);
        skb.Gro.Flush |= 1;
        return held;
    }

    private static bool HasSack(ReadOnlySpan<byte> th)
    {
        for (int i = 20; i < th.Length;)
        {
            byte kind = th[i];
            if (kind == 0) break;
            if (kind == 1) { i++; continue; }
            if (kind == 5) return true;
            if (i + 1 >= th.Length || th[i + 1] < 2) break;
            i += th[i + 1];
        }
        return false;
    }

    /// <summary>skb_gro_receive: append the payload of <paramref name="skb"/> to <paramref name="p"/> — stealing its
    /// head or frags into the last skb of p's chain while there are free frag slots, else chaining the whole skb on
    /// p's frag_list. False (-E2BIG) if the skb was marked to flush or the result would reach gro_max_size.</summary>
    internal static bool GroReceive(GroEngine e, Skb p, Skb skb)
    {
        int offset = skb.Gro.DataOffset;
        int len = GroEngine.GroLen(skb);
        if (p.Len + len >= e.MaxSize || skb.Gro.Flush != 0) return false;
        int segs = skb.Gro.Count;
        Skb lp = p.Gro.Last ?? p;
        int moved;
        if (skb.HeadLen <= offset)
        {
            moved = skb.GroGiveFragsTo(lp, offset);
            if (moved >= 0) skb.Gro.Free = GroFree.Free;
        }
        else
        {
            moved = skb.GroStealHeadInto(lp, offset);
            if (moved >= 0) skb.Gro.Free = GroFree.StolenHead;
        }
        if (moved >= 0)
        {
            if (lp != p) p.AddNonlinearLen(moved);
        }
        else
        {
            if (!skb.GroPullHeaders(offset)) return false;
            skb.Next = null;
            p.AppendFragList(skb);
            p.Gro.Last = skb;
            e.Stats.FragListMerges++;
        }
        p.Gro.Count = (ushort)(p.Gro.Count + segs);
        skb.Gro.SameFlow = true;
        e.LastMergeTraceId = p.TraceId;
        return true;
    }

    /// <summary>tcp4_gro_complete: the checksum field gets the pseudo-header sum for the merged length (CHECKSUM_PARTIAL).</summary>
    internal static bool Complete4(Skb skb, int nhoff, int thoff)
    {
        ReadOnlySpan<byte> iph = skb.LinearData.Slice(nhoff, 20);
        uint pseudo = Checksum.PseudoHeaderV4(iph.Slice(12, 4), iph.Slice(16, 4), 6, skb.Len - thoff);
        BinaryPrimitives.WriteUInt16BigEndian(skb.LinearData.Slice(thoff + 16), (ushort)pseudo);
        skb.GsoType |= GsoType.TcpV4 | (skb.Gro.IpFixedId ? GsoType.TcpFixedId : GsoType.None)
            | (skb.Gro.IpFixedIdInner ? GsoType.TcpFixedIdInner : GsoType.None);
        CompleteCommon(skb, thoff);
        return true;
    }

    /// <summary>tcp6_gro_complete.</summary>
    internal static bool Complete6(Skb skb, int nhoff, int thoff)
    {
        ReadOnlySpan<byte> iph = skb.LinearData.Slice(nhoff, 40);
        uint pseudo = Checksum.PseudoHeaderV6(iph.Slice(8, 16), iph.Slice(24, 16), 6, skb.Len - thoff);
        BinaryPrimitives.WriteUInt16BigEndian(skb.LinearData.Slice(thoff + 16), (ushort)pseudo);
        skb.GsoType |= GsoType.TcpV6;
        CompleteCommon(skb, thoff);
        return true;
    }

    /// <summary>tcp_gro_complete.</summary>
    private static void CompleteCommon(Skb skb, int thoff)
    {
        if (skb.Encapsulation) skb.InnerTransportHeader = skb.Data + thoff;
        skb.CsumStart = skb.Data + thoff;
        skb.CsumOffset = 16;
        skb.IpSummed = CsumState.Partial;
        skb.GsoSegs = skb.Gro.Count;
        if ((skb.LinearData[thoff + 13] & 0x80) != 0) skb.GsoType |= GsoType.TcpEcn;
    }
}
