using System.Globalization;
using System.Text;
using Softnet.Packets;

namespace Softnet.Netfilter.Xtables;

/// <summary>The port ranges xt_tcpudp.c's tcp_mt and udp_mt share (port_match), and what the chain compiler
/// indexes them by.</summary>
public abstract class PortsMatch : XtMatch
{
    internal override bool IsPure => true;
    public ushort SrcMin, SrcMax = 65535, DstMin, DstMax = 65535;
    public bool InvSrc, InvDst;
    internal bool HasSrc, HasDst;

    /// <summary>The -p protocol the match belongs to.</summary>
    internal abstract byte L4Protocol { get; }

    /// <summary>True when the match is exactly one destination port (--dport P, not inverted): an index key.</summary>
    internal bool ExactDstPort(out ushort port)
    {
        port = DstMin;
        return HasDst && !InvDst && DstMin == DstMax;
    }

    /// <summary>Not a later fragment, and both port ranges (with their inversions) hold.</summary>
    private protected bool PortsHold(ref PacketContext p)
    {
        if (p.IsFragment) return false;
        if (HasSrc && ((p.SrcPort >= SrcMin && p.SrcPort <= SrcMax) == InvSrc)) return false;
        if (HasDst && ((p.DstPort >= DstMin && p.DstPort <= DstMax) == InvDst)) return false;
        return true;
    }

    // The iptables half both libxt_tcp and libxt_udp have.

    /// <summary>--sport / --dport (and their long names); false for any other option.</summary>
    internal bool ParsePorts(string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--sport" or "--source-port":
                if (HasSrc) throw a.Error("multiple --sport flags not allowed");
                (SrcMin, SrcMax) = Opt.PortRange(a.Next(option), a); InvSrc = invert; HasSrc = true; return true;
            case "--dport" or "--destination-port":
                if (HasDst) throw a.Error("multiple --dport flags not allowed");
                (DstMin, DstMax) = Opt.PortRange(a.Next(option), a); InvDst = invert; HasDst = true; return true;
        }
        return false;
    }

    /// <summary>add_nft_tcpudp's port translation of both ranges: a full range is no test; "! 0:N" is "N+1:65535".</summary>
    internal void NftPorts()
    {
        NftPorts(ref HasSrc, ref SrcMin, ref SrcMax, ref InvSrc);
        NftPorts(ref HasDst, ref DstMin, ref DstMax, ref InvDst);
    }

    private static void NftPorts(ref bool has, ref ushort min, ref ushort max, ref bool inv)
    {
        if (!has) return;
        if (min == 0 && max == 65535) { has = false; inv = false; return; }
        if (inv && min == 0) { min = (ushort)(max + 1); max = 65535; inv = false; }
    }

    internal void SavePorts(StringBuilder sb)
    {
        if (HasSrc) sb.Append(InvSrc ? " ! --sport " : " --sport ").Append(Opt.PortText(SrcMin, SrcMax));
        if (HasDst) sb.Append(InvDst ? " ! --dport " : " --dport ").Append(Opt.PortText(DstMin, DstMax));
    }

    internal void ListPorts(StringBuilder sb)
    {
        if (HasSrc) ListPorts(sb, "spt", SrcMin, SrcMax, InvSrc);
        if (HasDst) ListPorts(sb, "dpt", DstMin, DstMax, InvDst);
    }

    private static void ListPorts(StringBuilder sb, string label, ushort min, ushort max, bool inv)
    {
        if (min == 0 && max == 65535 && !inv) return;
        if (min == max) sb.Append(' ').Append(label).Append(':').Append(inv ? "!" : "").Append(min);
        else sb.Append(' ').Append(label).Append("s:").Append(inv ? "!" : "").Append(min).Append(':').Append(max);
    }
}

/// <summary>Kernel half of -m tcp (xt_tcpudp.c tcp_mt): ports, flags, --tcp-option.</summary>
public sealed class TcpMatch : PortsMatch
{
    public bool InvFlags, InvOption;
    public byte FlagMask, FlagCompare, Option;
    internal bool HasFlags, HasOption;

    internal override byte L4Protocol => IpProtocols.Tcp;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (!PortsHold(ref p)) return false;
        if (HasFlags && (((p.TcpFlags & FlagMask) == FlagCompare) == InvFlags)) return false;
        // --tcp-option needs the option bytes; the context does not keep them, so only "absent" is decidable.
        if (HasOption && InvOption == false) return false;
        return true;
    }
}

/// <summary>Userspace half of -m tcp (libxt_tcp.c).</summary>
internal sealed class TcpMatchExtension : XtMatchExtension<TcpMatch>
{
    public override string Name => "tcp";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;

    internal static readonly (string Name, byte Bit)[] FlagNames =
    {
        ("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10), ("URG", 0x20),
    };

    internal override bool Parse(TcpMatch m, string option, bool invert, ArgReader a)
    {
        if (m.ParsePorts(option, invert, a)) return true;
        switch (option)
        {
            case "--syn":
                if (m.HasFlags) throw a.Error("multiple flags not allowed");
                m.FlagMask = 0x17; m.FlagCompare = 0x02; m.InvFlags = invert; m.HasFlags = true; return true;
            case "--tcp-flags":
                if (m.HasFlags) throw a.Error("multiple flags not allowed");
                m.FlagMask = ParseFlags(a.Next(option), a); m.FlagCompare = ParseFlags(a.Next(option), a);
                m.InvFlags = invert; m.HasFlags = true; return true;
            case "--tcp-option":
                m.Option = (byte)Opt.UInt(a.Next(option), a, "TCP option"); m.InvOption = invert; m.HasOption = true; return true;
        }
        return false;
    }

    private static byte ParseFlags(string s, ArgReader a)
    {
        byte v = 0;
        foreach (var part in s.Split(','))
        {
            if (part == "ALL") v |= 0x3F;
            else if (part == "NONE") { }
            else
            {
                int i = Array.FindIndex(FlagNames, f => f.Name == part);
                if (i < 0) throw a.Error($"Unknown TCP flag `{part}'");
                v |= FlagNames[i].Bit;
            }
        }
        return v;
    }

    internal override void FinalCheck(TcpMatch m, Rule rule, ArgReader a)
    {
        if (rule.Protocol != 6 || rule.InvProtocol) throw a.Error("TCP match requires '-p tcp'");
        // iptables-nft (nft.c add_nft_tcp): a match with every field at its default stays an xt match; any other
        // becomes nft payload comparisons, which drop full port ranges and empty flag masks, and turn an inverted
        // range from 0 into the range above it. What is left is what the kernel runs and iptables-save prints.
        bool allZero = !m.HasSrc && !m.HasDst && !m.HasFlags && !m.HasOption
            || (m.SrcMin == 0 && m.SrcMax == 65535 && !m.InvSrc && m.DstMin == 0 && m.DstMax == 65535 && !m.InvDst
                && (!m.HasFlags || (m.FlagMask == 0 && m.FlagCompare == 0 && !m.InvFlags)) && !m.HasOption);
        if (allZero || m.HasOption)
        {
            // Kept as xt_tcpudp: libxt_tcp prints a port range only when it is not 0:65535 (or is inverted), and
            // flags only with a mask (or inverted).
            if (m.HasSrc && m.SrcMin == 0 && m.SrcMax == 65535 && !m.InvSrc) m.HasSrc = false;
            if (m.HasDst && m.DstMin == 0 && m.DstMax == 65535 && !m.InvDst) m.HasDst = false;
            if (m.HasFlags && m.FlagMask == 0 && !m.InvFlags) m.HasFlags = false;
            return;
        }
        m.NftPorts();
        if (m.HasFlags && m.FlagMask == 0) m.HasFlags = false;
        if (!m.HasSrc && !m.HasDst && !m.HasFlags) m.Elided = true;
    }

    private static string FlagText(byte v)
    {
        if (v == 0) return "NONE";
        var parts = new List<string>();
        foreach (var (name, bit) in FlagNames) if ((v & bit) != 0) parts.Add(name);
        return string.Join(',', parts);
    }

    internal override void Save(TcpMatch m, StringBuilder sb)
    {
        m.SavePorts(sb);
        if (m.HasOption) sb.Append(m.InvOption ? " ! --tcp-option " : " --tcp-option ").Append(m.Option);
        if (m.HasFlags) sb.Append(m.InvFlags ? " ! --tcp-flags " : " --tcp-flags ").Append(FlagText(m.FlagMask)).Append(' ').Append(FlagText(m.FlagCompare));
    }

    internal override void List(TcpMatch m, StringBuilder sb)
    {
        sb.Append(" tcp");
        m.ListPorts(sb);
        if (m.HasOption) sb.Append(" option=").Append(m.InvOption ? "!" : "").Append(m.Option);
        if (m.HasFlags)
            sb.Append(" flags:").Append(m.InvFlags ? "!" : "").Append("0x").Append(m.FlagMask.ToString("X2", CultureInfo.InvariantCulture))
              .Append("/0x").Append(m.FlagCompare.ToString("X2", CultureInfo.InvariantCulture));
    }
}
