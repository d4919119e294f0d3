using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Kernel half of -m u32 (xt_u32.c): up to 11 tests, each a location (a 32-bit word read at an offset of the IP
/// datagram, then &amp; mask, &lt;&lt; / &gt;&gt; shifts, and @ to move the base and read again) whose value must fall in
/// one of up to 11 ranges. Reads past the end fail the test.
/// </summary>
public sealed class U32Match : XtMatch
{
    public const byte OpAnd = 0, OpLeftShift = 1, OpRightShift = 2, OpAt = 3;
    internal override bool IsPure => true;
    public bool Invert;
    public Test[] Tests = Array.Empty<Test>();

    public sealed class Test
    {
        public (uint Number, byte Op)[] Location = Array.Empty<(uint, byte)>();
        public (uint Min, uint Max)[] Values = Array.Empty<(uint, uint)>();
    }

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h) => MatchIt(p.Packet[..Math.Min(p.Packet.Length, p.Length)]) ^ Invert;

    private bool MatchIt(ReadOnlySpan<byte> skb)
    {
        uint len = (uint)skb.Length;
        foreach (var ct in Tests)
        {
            uint at = 0;
            uint pos = ct.Location[0].Number;
            if (len < 4 || pos > len - 4) return false;
            uint val = BinaryPrimitives.ReadUInt32BigEndian(skb[(int)pos..]);
            for (int i = 1; i < ct.Location.Length; i++)
            {
                uint number = ct.Location[i].Number;
                switch (ct.Location[i].Op)
                {
                    case OpAnd: val &= number; break;
                    case OpLeftShift: val = number >= 32 ? val << (int)(number & 31) : val << (int)number; break;
                    case OpRightShift: val = number >= 32 ? val >> (int)(number & 31) : val >> (int)number; break;
                    default:
                        if (at + val < at) return false;
                        at += val;
                        pos = number;
                        if (at + 4 < at || len < at + 4 || pos > len - at - 4) return false;
                        val = BinaryPrimitives.ReadUInt32BigEndian(skb[(int)(at + pos)..]);
                        break;
                }
            }
            bool hit = false;
            foreach (var (min, max) in ct.Values)
                if (min <= val && val <= max) { hit = true; break; }
            if (!hit) return false;
        }
        return true;
    }
}

/// <summary>Userspace half of -m u32 (libxt_u32.c).</summary>
internal sealed class U32MatchExtension : X6MatchExtension<U32Match>
{
    public override string Name => "u32";
    private const int MaxSize = 10;
    private static readonly XtOpt[] Table = { Arg("u32", 0, invert: true, mandatory: true) };
    private protected override XtOpt[] Options => Table;

    /// <summary>strtoul from position <paramref name="i"/> (base 0, leading space and sign allowed); false when no digits.</summary>
    private static bool Number(string s, ref int i, out uint value)
    {
        value = 0;
        int j = i;
        while (j < s.Length && char.IsWhiteSpace(s[j])) j++;
        bool neg = false;
        if (j < s.Length && s[j] is '+' or '-') neg = s[j++] == '-';
        int b = 10;
        if (j + 2 < s.Length + 0 && s[j] == '0' && (s[j + 1] is 'x' or 'X') && j + 2 < s.Length && Uri.IsHexDigit(s[j + 2])) { b = 16; j += 2; }
        else if (j < s.Length && s[j] == '0') b = 8;
        int start = j;
        ulong v = 0;
        bool overflow = false;
        while (j < s.Length)
        {
            int d = s[j] is >= '0' and <= '9' ? s[j] - '0' : s[j] is >= 'a' and <= 'f' ? s[j] - 'a' + 10 : s[j] is >= 'A' and <= 'F' ? s[j] - 'A' + 10 : 99;
            if (d >= b) break;
            v = v * (ulong)b + (ulong)d;
            if (v > uint.MaxValue) overflow = true;
            j++;
        }
        if (j == start) return false;
        if (neg && v != 0) overflow = true;
        i = j;
        value = (uint)v;
        return !overflow;
    }

    private protected override void Parse(U32Match m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        m.Invert = invert;
        string s = arg!;
        var tests = new List<U32Match.Test>();
        var loc = new List<(uint, byte)>();
        var vals = new List<(uint, uint)>();
        int state = 0, i = 0;
        uint N(ref int k)
        {
            int at = k;
            if (!Number(s, ref k, out uint v)) throw a.Error($"u32: at char {at}: not a number or out of range");
            return v;
        }
        while (true)
        {
            while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
            if (i >= s.Length)
            {
                if (state == 0) throw a.Error("u32: abrupt end of input after location specifier");
                if (vals.Count == 0) throw a.Error("u32: test ended with no value specified");
                tests.Add(new U32Match.Test { Location = loc.ToArray(), Values = vals.ToArray() });
                if (tests.Count > MaxSize) throw a.Error($"u32: at char {i}: too many \"&&\"s");
                m.Tests = tests.ToArray();
                return;
            }
            if (state == 0)
            {
                if (s[i] == '=')
                {
                    if (loc.Count == 0) throw a.Error($"u32: at char {i}: location spec missing");
                    i++;
                    state = 1;
                    continue;
                }
                byte op = U32Match.OpAnd;
                if (loc.Count != 0)
                {
                    switch (s[i])
                    {
                        case '&': op = U32Match.OpAnd; break;
                        case '<':
                            if (++i >= s.Length || s[i] != '<') throw a.Error($"u32: at char {i}: a second '<' was expected");
                            op = U32Match.OpLeftShift;
                            break;
                        case '>':
                            if (++i >= s.Length || s[i] != '>') throw a.Error($"u32: at char {i}: a second '>' was expected");
                            op = U32Match.OpRightShift;
                            break;
                        case '@': op = U32Match.OpAt; break;
                        default: throw a.Error($"u32: at char {i}: operator expected");
                    }
                    i++;
                }
                loc.Add((N(ref i), op));
                if (loc.Count > MaxSize) throw a.Error($"u32: at char {i}: too many operators");
            }
            else if (s[i] == '&')
            {
                if (++i >= s.Length || s[i] != '&') throw a.Error($"u32: at char {i}: a second '&' was expected");
                if (vals.Count == 0) throw a.Error($"u32: at char {i}: value spec missing");
                tests.Add(new U32Match.Test { Location = loc.ToArray(), Values = vals.ToArray() });
                if (tests.Count > MaxSize) throw a.Error($"u32: at char {i}: too many \"&&\"s");
                loc.Clear();
                vals.Clear();
                i++;
                state = 0;
            }
            else
            {
                if (vals.Count > 0)
                {
                    if (s[i] != ',') throw a.Error($"u32: at char {i}: expected \",\" or \"&&\"");
                    i++;
                }
                uint min = N(ref i), max = min;
                while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
                if (i < s.Length && s[i] == ':') { i++; max = N(ref i); }
                vals.Add((min, max));
                if (vals.Count > MaxSize) throw a.Error($"u32: at char {i}: too many \",\"s");
            }
        }
    }

    private static string H(uint v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);

    private static void Dump(U32Match m, StringBuilder sb)
    {
        sb.Append(" \"");
        for (int t = 0; t < m.Tests.Length; t++)
        {
            var ct = m.Tests[t];
            if (t > 0) sb.Append("&&");
            sb.Append(H(ct.Location[0].Number));
            for (int i = 1; i < ct.Location.Length; i++)
                sb.Append(ct.Location[i].Op switch { U32Match.OpAnd => "&", U32Match.OpLeftShift => "<<", U32Match.OpRightShift => ">>", _ => "@" })
                  .Append(H(ct.Location[i].Number));
            sb.Append('=');
            for (int i = 0; i < ct.Values.Length; i++)
            {
                if (i > 0) sb.Append(',');
                sb.Append(H(ct.Values[i].Min));
                if (ct.Values[i].Min != ct.Values[i].Max) sb.Append(':').Append(H(ct.Values[i].Max));
            }
        }
        sb.Append('"');
    }

    internal override void Save(U32Match m, StringBuilder sb) { if (m.Invert) sb.Append(" !"); sb.Append(" --u32"); Dump(m, sb); }
    internal override void List(U32Match m, StringBuilder sb) { sb.Append(" u32"); if (m.Invert) sb.Append(" !"); Dump(m, sb); }
}
