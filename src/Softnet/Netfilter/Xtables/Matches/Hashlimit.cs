namespace Softnet.Netfilter.Xtables;

/// <summary>xt_hashlimit's per-namespace tables, by --hashlimit-name.</summary>
public sealed class HashlimitTables
{
}
