namespace Softnet.Filter;

/// <summary>
/// A filter expression libpcap would refuse. <see cref="Reason"/> is libpcap's own wording ("can't parse filter
/// expression: syntax error", "illegal port number 70000 > 65535", ...), <see cref="Position"/> the character offset
/// in the expression where the parser stood when it gave up.
/// </summary>
public sealed class FilterException(string reason, int position)
    : Exception(position >= 0 ? $"{reason} (at character {position})" : reason)
{
    public string Reason { get; } = reason;
    public int Position { get; } = position;

    internal const string SyntaxError = "can't parse filter expression: syntax error";

    // gencode.c's syntax(): an id with no qualifier to inherit ("tcp and 80").
    internal const string SemanticSyntaxError = "syntax error in filter expression";
}
