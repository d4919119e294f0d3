using System.Globalization;
using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Kernel half of -m owner (xt_owner.c): the local socket's owner. Softnet has no local sockets, so every packet is
/// one without a socket, for which the kernel matches exactly when every given option is inverted.
/// </summary>
public sealed class OwnerMatch : XtMatch
{
    public const byte Uid = 1, Gid = 2, SocketExists = 4, SupplGroups = 8;
    internal override bool IsPure => true;
    public uint UidMin, UidMax, GidMin, GidMax;
    public byte Match, Invert;

    internal override int ValidHooks => XtHooks.LocalOut | XtHooks.PostRouting;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h) => (Match ^ Invert) == 0;
}

/// <summary>Userspace half of -m owner (libxt_owner.c revision 1).</summary>
internal sealed class OwnerMatchExtension : X6MatchExtension<OwnerMatch>
{
    public override string Name => "owner";
    private static readonly XtOpt[] Table =
    {
        Arg("uid-owner", 0, invert: true), Arg("gid-owner", 1, invert: true), Flag("socket-exists", 2, invert: true), Flag("suppl-groups", 3),
    };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(OwnerMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        switch (o.Id)
        {
            case 0:
                (m.UidMin, m.UidMax) = Range(arg!, "/etc/passwd", $"Bad value for \"--uid-owner\" option: \"{arg}\"", a);
                m.Match |= OwnerMatch.Uid;
                if (invert) m.Invert |= OwnerMatch.Uid;
                break;
            case 1:
                (m.GidMin, m.GidMax) = Range(arg!, "/etc/group", $"Bad value for \"--gid-owner\" option: \"{arg}\"", a);
                m.Match |= OwnerMatch.Gid;
                if (invert) m.Invert |= OwnerMatch.Gid;
                break;
            case 2:
                m.Match |= OwnerMatch.SocketExists;
                if (invert) m.Invert |= OwnerMatch.SocketExists;
                break;
            default:
                if ((m.Match & OwnerMatch.Gid) == 0)
                    throw a.Error("owner: Bad value for \"--suppl-groups\" option: \"you need to use --gid-owner first\"");
                m.Match |= OwnerMatch.SupplGroups;
                break;
        }
    }

    private protected override void Check(OwnerMatch m, uint flags, Rule rule, ArgReader a)
    {
        if (flags == 0) throw a.Error("owner: At least one of --uid-owner, --gid-owner or --socket-exists is required");
    }

    /// <summary>A name from the passwd/group file, a number, or a range "a-b".</summary>
    private static (uint, uint) Range(string s, string db, string error, ArgReader a)
    {
        foreach (var line in File.Exists(db) ? File.ReadLines(db) : Array.Empty<string>())
        {
            var f = line.Split(':');
            if (f.Length > 2 && f[0] == s && uint.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out uint id)) return (id, id);
        }
        int dash = s.IndexOf('-');
        string lo = dash < 0 ? s : s[..dash], hi = dash < 0 ? s : s[(dash + 1)..];
        if (!uint.TryParse(lo, NumberStyles.None, CultureInfo.InvariantCulture, out uint min) || !uint.TryParse(hi, NumberStyles.None, CultureInfo.InvariantCulture, out uint max)
            || max < min || max == uint.MaxValue)
            throw a.Error($"owner: {error}");
        return (min, max);
    }

    private static string Ids(uint min, uint max) => min == max ? min.ToString(CultureInfo.InvariantCulture) : $"{min}-{max}";

    internal override void Save(OwnerMatch m, StringBuilder sb)
    {
        string I(byte f) => (m.Invert & f) != 0 ? " !" : "";
        if ((m.Match & OwnerMatch.SocketExists) != 0) sb.Append(I(OwnerMatch.SocketExists)).Append(" --socket-exists");
        if ((m.Match & OwnerMatch.Uid) != 0) sb.Append(I(OwnerMatch.Uid)).Append(" --uid-owner ").Append(Ids(m.UidMin, m.UidMax));
        if ((m.Match & OwnerMatch.Gid) != 0) sb.Append(I(OwnerMatch.Gid)).Append(" --gid-owner ").Append(Ids(m.GidMin, m.GidMax));
        if ((m.Match & OwnerMatch.SupplGroups) != 0) sb.Append(" --suppl-groups");
    }

    internal override void List(OwnerMatch m, StringBuilder sb)
    {
        string I(byte f) => (m.Invert & f) != 0 ? " !" : "";
        if ((m.Match & OwnerMatch.SocketExists) != 0) sb.Append(I(OwnerMatch.SocketExists)).Append(" owner socket exists");
        if ((m.Match & OwnerMatch.Uid) != 0) sb.Append(I(OwnerMatch.Uid)).Append(" owner UID match ").Append(Ids(m.UidMin, m.UidMax));
        if ((m.Match & OwnerMatch.Gid) != 0)
        {
            sb.Append(I(OwnerMatch.Gid)).Append(" owner GID match ").Append(Ids(m.GidMin, m.GidMax));
            if ((m.Match & OwnerMatch.SupplGroups) != 0) sb.Append(" incl. suppl. groups");
        }
    }
}
