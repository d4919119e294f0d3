using System.Globalization;
using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m tcp (xt_tcpudp.c tcp_mt): ports, flags, --tcp-option.</summary>
public sealed class TcpMatch : XtMatch
{
    internal override bool IsPure => true;
    public ushort SrcMin, SrcMax = 65535, DstMin, DstMax = 65535;
    public bool InvSrc, InvDst, InvFlags, InvOption;
    public byte FlagMask, FlagCompare, Option;
    internal bool HasSrc, HasDst, HasFlags, HasOption;

    /// <summary>True when the match is exactly one destination port (--dport P, not inverted): an index key.</summary>
    internal bool ExactDstPort(out ushort port)
    {
        port = DstMin;
        return HasDst && !InvDst && DstMin == DstMax;
    }

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (p.IsFragment) return false;
        if (HasSrc && ((p.SrcPort >= SrcMin && p.SrcPort <= SrcMax) == InvSrc)) return false;
        if (HasDst && ((p.DstPort >= DstMin && p.DstPort <= DstMax) == InvDst)) return false;
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

    internal static readonly (string Name, byte Bit)[] FlagNames =
    {
        ("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10), ("URG", 0x20),
    };

    internal override bool Parse(TcpMatch m, string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--sport" or "--source-port":
                if (m.HasSrc) throw a.Error("multiple --sport flags not allowed");
                (m.SrcMin, m.SrcMax) = Opt.PortRange(a.Next(option), a); m.InvSrc = invert; m.HasSrc = true; return true;
            case "--dport" or "--destination-port":
                if (m.HasDst) throw a.Error("multiple --dport flags not allowed");
                (m.DstMin, m.DstMax) = Opt.PortRange(a.Next(option), a); m.InvDst = invert; m.HasDst = true; return true;
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
        NftPorts(ref m.HasSrc, ref m.SrcMin, ref m.SrcMax, ref m.InvSrc);
        NftPorts(ref m.HasDst, ref m.DstMin, ref m.DstMax, ref m.InvDst);
        if (m.HasFlags && m.FlagMask == 0) m.HasFlags = false;
        if (!m.HasSrc && !m.HasDst && !m.HasFlags) m.Elided = true;
    }

    /// <summary>add_nft_tcpudp's port translation: a full range is no test; "! 0:N" is "N+1:65535".</summary>
    internal static void NftPorts(ref bool has, ref ushort min, ref ushort max, ref bool inv)
    {
        if (!has) return;
        if (min == 0 && max == 65535) { has = false; inv = false; return; }
        if (inv && min == 0) { min = (ushort)(max + 1); max = 65535; inv = false; }
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
        if (m.HasSrc) sb.Append(m.InvSrc ? " ! --sport " : " --sport ").Append(Opt.PortText(m.SrcMin, m.SrcMax));
        if (m.HasDst) sb.Append(m.InvDst ? " ! --dport " : " --dport ").Append(Opt.PortText(m.DstMin, m.DstMax));
        if (m.HasOption) sb.Append(m.InvOption ? " ! --tcp-option " : " --tcp-option ").Append(m.Option);
        if (m.HasFlags) sb.Append(m.InvFlags ? " ! --tcp-flags " : " --tcp-flags ").Append(FlagText(m.FlagMask)).Append(' ').Append(FlagText(m.FlagCompare));
    }

    internal override void List(TcpMatch m, StringBuilder sb)
    {
        sb.Append(" tcp");
        if (m.HasSrc) ListPorts(sb, "spt", m.SrcMin, m.SrcMax, m.InvSrc);
        if (m.HasDst) ListPorts(sb, "dpt", m.DstMin, m.DstMax, m.InvDst);
        if (m.HasOption) sb.Append(" option=").Append(m.InvOption ? "!" : "").Append(m.Option);
        if (m.HasFlags)
            sb.Append(" flags:").Append(m.InvFlags ? "!" : "").Append("0x").Append(m.FlagMask.ToString("X2", CultureInfo.InvariantCulture))
              .Append("/0x").Append(m.FlagCompare.ToString("X2", CultureInfo.InvariantCulture));
    }

    internal static void ListPorts(StringBuilder sb, string label, ushort min, ushort max, bool inv)
    {
        if (min == 0 && max == 65535 && !inv) return;
        if (min == max) sb.Append(' ').Append(label).Append(':').Append(inv ? "!" : "").Append(min);
        else sb.Append(' ').Append(label).Append("s:").Append(inv ? "!" : "").Append(min).Append(':').Append(max);
    }
}
