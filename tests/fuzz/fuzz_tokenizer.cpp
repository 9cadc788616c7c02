// tokenizer.json (models/tokenizer.h). Input: tokenizer.json bytes, then optionally "\0" and a text.
// Any file gives a Tokenizer or a TokenizerError; a loaded tokenizer encodes the text (valid UTF-8;
// std::invalid_argument otherwise, as documented) to ids inside its vocabulary with offsets inside
// the text, and decodes any ids without failing.
#include <stdexcept>
#include <string>

#include "models/tokenizer.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  const size_t cut = in.find('\0');
  const std::string file = in.substr(0, cut);
  const std::string text = cut == std::string::npos ? std::string("hello world") : in.substr(cut + 1);
  sc::fuzz::expect_input_error("tokenizer", [&] {
    const sc::Tokenizer tok = sc::Tokenizer::from_json_text(file, "tokenizer.json");
    const size_t vocab = tok.vocab_size();
    sc::Encoding e;
    try {
      e = tok.encode_with_offsets(text);
    } catch (const std::invalid_argument&) {
      return;  // text not valid UTF-8: the documented error
    }
    sc::fuzz::check(e.ids.size() == e.offsets.size(), "ids and offsets differ in length");
    for (size_t i = 0; i < e.ids.size(); ++i) {
      sc::fuzz::check(e.ids[i] >= 0 && size_t(e.ids[i]) < vocab, "id outside the vocabulary");
      sc::fuzz::check(e.offsets[i].first <= e.offsets[i].second && e.offsets[i].second <= text.size(),
                      "offset outside the text");
    }
    (void)tok.decode(e.ids, false);
    (void)tok.decode(e.ids, true);
    // Arbitrary ids (from the text's bytes) decode too (lossy UTF-8 repair of partial tokens), or
    // throw the documented std::out_of_range for an id no token has (the id space may have holes).
    std::vector<sc::TokenId> ids;
    for (unsigned char c : text) ids.push_back(sc::TokenId(vocab ? c % vocab : 0));
    try {
      if (vocab) (void)tok.decode(ids);
    } catch (const std::out_of_range&) {
    }
  });
  return 0;
}
