using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Kernel half of -m string (xt_string.c): the pattern found in the datagram between --from and --to (offsets from
/// the IP header, as skb_find_text sees skb-&gt;data in the IPv4 hooks), the whole pattern inside [from, to).
/// bm and kmp find the same first occurrence in linear data; --icase compares ASCII letters case-insensitively.
/// </summary>
public sealed class StringMatch : XtMatch
{
    internal override bool IsPure => true;
    public byte[] Pattern = Array.Empty<byte>();
    public string Algo = "";
    public ushort From, To = ushort.MaxValue;
    public bool Invert, IgnoreCase;

    internal override string? CheckEntry(in XtCheck c)
    {
        if (From > To) return c.Invalid("string: --from is past --to");
        if (Algo is not ("bm" or "kmp")) return $"RULE_APPEND failed (No such file or directory): rule in chain {c.Chain} (string: no textsearch algorithm \"{Algo}\")";
        if (Pattern.Length == 0) return c.Invalid("string: empty pattern");
        return null;
    }

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        var data = p.Packet;
        int len = Math.Min(data.Length, p.Length);
        int end = Math.Min(len, (int)To);
        if (From >= end) return Invert;
        var window = data[From..end];
        int at = IgnoreCase ? IndexOfIgnoreCase(window, Pattern) : window.IndexOf(Pattern);
        bool found = at >= 0 && at + Pattern.Length <= To - From;
        return found ^ Invert;
    }

    private static int IndexOfIgnoreCase(ReadOnlySpan<byte> hay, ReadOnlySpan<byte> needle)
    {
        for (int i = 0; i + needle.Length <= hay.Length; i++)
        {
            int k = 0;
            while (k < needle.Length && Lower(hay[i + k]) == Lower(needle[k])) k++;
            if (k == needle.Length) return i;
        }
        return -1;
    }

    private static byte Lower(byte b) => b is >= (byte)'A' and <= (byte)'Z' ? (byte)(b | 0x20) : b;
}

/// <summary>Userspace half of -m string (libxt_string.c revision 1).</summary>
internal sealed class StringMatchExtension : X6MatchExtension<StringMatch>
{
    public override string Name => "string";
    private const int OFrom = 0, OTo = 1, OAlgo = 2, OIcase = 3, OString = 4, OHex = 5;
    private const int MaxPattern = 128;
    private static readonly XtOpt[] Table =
    {
        Arg("from", OFrom), Arg("to", OTo), Arg("algo", OAlgo, mandatory: true),
        Arg("string", OString, invert: true, excl: 1 << OHex), Arg("hex-string", OHex, invert: true, excl: 1 << OString),
        Flag("icase", OIcase),
    };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(StringMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        switch (o.Id)
        {
            case OFrom: m.From = (ushort)XtOptions.UInt(Name, o, arg!, 0, 65535, a); break;
            case OTo: m.To = (ushort)XtOptions.UInt(Name, o, arg!, 0, 65535, a); break;
            case OAlgo:
                if (arg!.Length > 15) throw a.Error($"{Name}: option \"--algo\" is too long (max 15 characters)");
                m.Algo = arg;
                break;
            case OIcase: m.IgnoreCase = true; break;
            case OString:
            {
                var bytes = Encoding.UTF8.GetBytes(arg!);
                if (bytes.Length > MaxPattern) throw a.Error($"STRING too long \"{arg}\"");
                m.Pattern = bytes;
                m.Invert = invert;
                break;
            }
            default:
                m.Pattern = ParseHex(Encoding.UTF8.GetBytes(arg!), arg!, a);
                m.Invert = invert;
                break;
        }
    }

    private protected override void Check(StringMatch m, uint flags, Rule rule, ArgReader a)
    {
        if ((flags & (1 << OString | 1 << OHex)) == 0) throw a.Error("STRING match: You must specify `--string' or `--hex-string'");
    }

    private static byte[] ParseHex(byte[] s, string text, ArgReader a)
    {
        var pat = new List<byte>();
        int i = 0, slen = s.Length;
        bool hex = false, literal = false;
        if (slen == 0) throw a.Error("STRING must contain at least one char");
        while (i < slen)
        {
            if (pat.Count >= MaxPattern) throw a.Error($"STRING too long \"{text}\"");
            if (s[i] == '\\' && !hex) literal = true;
            else if (s[i] == '\\') throw a.Error("Cannot include literals in hex data");
            else if (s[i] == '|')
            {
                if (hex) hex = false;
                else
                {
                    hex = true;
                    while (i + 1 < slen && s[i + 1] == ' ') i++;
                }
                if (i + 1 >= slen) break;
                i++;
            }
            if (literal)
            {
                if (i + 1 >= slen) throw a.Error("Bad literal placement at end of string");
                pat.Add(s[i + 1]);
                i += 2;
                literal = false;
            }
            else if (hex)
            {
                if (i + 1 >= slen) throw a.Error("Odd number of hex digits");
                if (i + 2 >= slen) throw a.Error("Invalid hex block");
                if (!Uri.IsHexDigit((char)s[i])) throw a.Error($"Invalid hex char '{(char)s[i]}'");
                if (!Uri.IsHexDigit((char)s[i + 1])) throw a.Error($"Invalid hex char '{(char)s[i + 1]}'");
                pat.Add((byte)(Convert.ToInt32(((char)s[i]).ToString(), 16) << 4 | Convert.ToInt32(((char)s[i + 1]).ToString(), 16)));
                i += s[i + 2] == ' ' ? 3 : 2;
            }
            else
            {
                pat.Add(s[i]);
                i++;
            }
        }
        return pat.ToArray();
    }

    private static bool IsHex(byte[] p)
    {
        foreach (byte b in p) if (b < 0x20 || b > 0x7E) return true;
        return p.Length > 0 && p[^1] == '\\';
    }

    private static void Pattern(StringMatch m, StringBuilder sb)
    {
        sb.Append(" \"");
        if (IsHex(m.Pattern))
        {
            sb.Append('|');
            foreach (byte b in m.Pattern) sb.Append(b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
            sb.Append('|');
        }
        else
            foreach (byte b in m.Pattern)
            {
                if (b is (byte)'"' or (byte)'\\') sb.Append('\\');
                sb.Append((char)b);
            }
        sb.Append('"');
    }

    internal override void Save(StringMatch m, StringBuilder sb)
    {
        sb.Append(m.Invert ? " !" : "").Append(IsHex(m.Pattern) ? " --hex-string" : " --string");
        Pattern(m, sb);
        sb.Append(" --algo ").Append(m.Algo);
        if (m.From != 0) sb.Append(" --from ").Append(m.From);
        if (m.To != ushort.MaxValue) sb.Append(" --to ").Append(m.To);
        if (m.IgnoreCase) sb.Append(" --icase");
    }

    internal override void List(StringMatch m, StringBuilder sb)
    {
        sb.Append(" STRING match ").Append(m.Invert ? "!" : "");
        Pattern(m, sb);
        sb.Append(" ALGO name ").Append(m.Algo);
        if (m.From != 0) sb.Append(" FROM ").Append(m.From);
        if (m.To != ushort.MaxValue) sb.Append(" TO ").Append(m.To);
        if (m.IgnoreCase) sb.Append(" ICASE");
    }
}
