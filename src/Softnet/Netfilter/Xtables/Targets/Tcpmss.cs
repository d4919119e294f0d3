using System.Buffers.Binary;
using System.Text;
using Softnet.Packets;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Kernel half of TCPMSS (xt_TCPMSS.c, IPv4): lowers the MSS option of TCP packets to a fixed value or to the
/// path MTU minus 40, or inserts the option (capped at 536) into a packet that has none and carries no data.
/// The TCP checksum is updated incrementally as inet_proto_csum_replace2/4 do, the IP header's by csum_replace2.
/// </summary>
public sealed class TcpmssTarget : XtTarget
{
    /// <summary>XT_TCPMSS_CLAMP_PMTU: the mss value meaning "clamp to the path MTU".</summary>
    public const ushort ClampPmtu = 0xFFFF;

    /// <summary>The MSS to set, or <see cref="ClampPmtu"/>.</summary>
    public ushort Mss;
    internal uint Flags;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        int ret = Mangle(ref p);
        if (ret < 0)
        {
            p.DropReason = ret == NoRoom ? DropReason.NetfilterTcpmssNoRoom : DropReason.NetfilterDrop;
            return TargetResult.Drop;
        }
        return TargetResult.Continue;
    }

    private const int NoRoom = -2;

    /// <summary>tcpmss_mangle_packet + tcpmss_tg4: -1 drop (NF_DROP), -2 no room to insert, 0 unchanged length, 4 option inserted.</summary>
    private int Mangle(ref PacketContext p)
    {
        if (p.IsFragment) return 0;
        var pkt = p.WritablePacket;
        // Called without the datagram's bytes (a context-only hook): nothing to mangle.
        if (pkt.IsEmpty) return 0;
        if (pkt.Length < p.Length || p.Length < 20) return -1;
        var ip = pkt[..p.Length];
        int tcphoff = (ip[0] & 0xF) * 4;
        const int minlen = 20 + 20;
        int len = p.Length - tcphoff;
        if (len < 20) return -1;
        var tcp = ip[tcphoff..];
        int hdrlen = (tcp[12] >> 4) * 4;
        if (len < hdrlen || hdrlen < 20) return -1;

        uint newmss;
        if (Mss == ClampPmtu)
        {
            // min(dst_mtu(skb_dst(skb)), MTU of the route back to the source (~0 when there is none)).
            uint inMtu = p.ReverseMtu > 0 ? (uint)p.ReverseMtu : uint.MaxValue;
            uint minMtu = Math.Min((uint)Math.Max(p.OutMtu, 0), inMtu);
            if (minMtu <= minlen) return -1;
            newmss = minMtu - minlen;
        }
        else newmss = Mss;
        ushort mss16 = (ushort)newmss;

        for (int i = 20; i <= hdrlen - 4; i += OptLen(tcp, i))
        {
            if (tcp[i] == 2 && tcp[i + 1] == 4)
            {
                ushort oldmss = BinaryPrimitives.ReadUInt16BigEndian(tcp[(i + 2)..]);
                // Never raise the MSS, not even when setting it.
                if (oldmss <= mss16) return 0;
                BinaryPrimitives.WriteUInt16BigEndian(tcp[(i + 2)..], mss16);
                ushort check = BinaryPrimitives.ReadUInt16BigEndian(tcp[16..]);
                BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], MangleChecksum.ProtoReplace2(check, p.IpSummed, oldmss, mss16, false));
                return 0;
            }
        }

        // Data after the header: the option cannot be added without moving it.
        if (len > hdrlen) return 0;
        // doff has 4 bits: no room for another option word.
        if (hdrlen >= 15 * 4) return 0;
        // The kernel grows the skb (pskb_expand_head) when it lacks tailroom; here the caller's buffer must have it.
        if (pkt.Length < p.Length + 4) return NoRoom;

        mss16 = Math.Min(mss16, (ushort)536);
        tcp = pkt[tcphoff..(p.Length + 4)];
        tcp[20..len].CopyTo(tcp[24..]);
        ushort sum = BinaryPrimitives.ReadUInt16BigEndian(tcp[16..]);
        sum = MangleChecksum.ProtoReplace2(sum, p.IpSummed, (ushort)len, (ushort)(len + 4), true);
        tcp[20] = 2;
        tcp[21] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[22..], mss16);
        sum = MangleChecksum.ProtoReplace4(sum, p.IpSummed, 0, 0, 0x0204, mss16, false);
        ushort oldWord = BinaryPrimitives.ReadUInt16BigEndian(tcp[12..]);
        tcp[12] = (byte)(tcp[12] + (1 << 4));
        ushort newWord = BinaryPrimitives.ReadUInt16BigEndian(tcp[12..]);
        sum = MangleChecksum.ProtoReplace2(sum, p.IpSummed, oldWord, newWord, false);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], sum);

        // tcpmss_tg4: the IP total length grows by the option, the header checksum follows.
        ushort oldTot = BinaryPrimitives.ReadUInt16BigEndian(pkt[2..]);
        ushort newTot = (ushort)(oldTot + 4);
        ushort ipCheck = BinaryPrimitives.ReadUInt16BigEndian(pkt[10..]);
        BinaryPrimitives.WriteUInt16BigEndian(pkt[10..], MangleChecksum.Replace2(ipCheck, oldTot, newTot));
        BinaryPrimitives.WriteUInt16BigEndian(pkt[2..], newTot);
        p.Length += 4;
        return 4;
    }

    /// <summary>optlen: EOL, NOP and zero-length options advance one byte, others their length.</summary>
    private static int OptLen(ReadOnlySpan<byte> opt, int offset)
        => opt[offset] <= 1 || opt[offset + 1] == 0 ? 1 : opt[offset + 1];

    /// <summary>tcpmss_tg4_check: clamping needs a route MTU, which only FORWARD, OUTPUT and POSTROUTING have.
    /// (Under nf_tables compat the "-p tcp --syn" test is skipped; the protocol check is xt_check_target's.)</summary>
    internal override string? CheckEntry(in XtCheck check)
    {
        // xt_check_target: the target is registered for IPPROTO_TCP only.
        if (check.Rule.Protocol != 6 || check.Rule.InvProtocol) return check.Invalid("TCPMSS target: only valid for protocol 6");
        const int allowed = XtHooks.Forward | XtHooks.LocalOut | XtHooks.PostRouting;
        if (Mss == ClampPmtu && (check.HookMask & ~allowed) != 0)
            return check.Invalid("xt_TCPMSS: path-MTU clamping only supported in FORWARD, OUTPUT and POSTROUTING hooks");
        return null;
    }
}

/// <summary>Userspace half of TCPMSS (libxt_TCPMSS.c, IPv4 options).</summary>
internal sealed class TcpmssTargetExtension : XtTargetExtension<TcpmssTarget>
{
    public override string Name => "TCPMSS";

    private static readonly XtOpt[] Options =
    {
        new("set-mss", 0, XtOptType.UInt16) { Max = ushort.MaxValue - 20 },
        new("clamp-mss-to-pmtu", 1, XtOptType.None),
    };

    internal override bool Parse(TcpmssTarget t, string option, bool invert, ArgReader a)
    {
        var o = XtOptions.Find(Options, option);
        if (o == null) return false;
        string? arg = XtOptions.Begin(Name, o, ref t.Flags, invert, a);
        t.Mss = o.Id == 0 ? (ushort)XtOptions.Int(Name, o, arg!, a) : TcpmssTarget.ClampPmtu;
        return true;
    }

    internal override void FinalCheck(TcpmssTarget t, Rule rule, ArgReader a)
    {
        if (t.Flags == 0) throw a.Error("TCPMSS target: At least one parameter is required");
        XtOptions.FinalCheck(Name, Options, t.Flags, a);
    }

    internal override void Save(TcpmssTarget t, StringBuilder sb)
    {
        if (t.Mss == TcpmssTarget.ClampPmtu) sb.Append(" --clamp-mss-to-pmtu");
        else sb.Append(" --set-mss ").Append(t.Mss);
    }

    internal override void List(TcpmssTarget t, StringBuilder sb)
    {
        if (t.Mss == TcpmssTarget.ClampPmtu) sb.Append(" TCPMSS clamp to PMTU");
        else sb.Append(" TCPMSS set ").Append(t.Mss);
    }
}
